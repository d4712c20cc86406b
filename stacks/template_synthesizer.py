"""A stack synthesizer that writes a template rendered in Python into the stack's CloudFormation template.

An InstanceStack's resources are plain data (`constructs/af_cfn.py`). Building them as constructs costs a jsii
round trip to Node per resource, parameter and output plus Python-side marshalling, ~30 ms per instance stack;
at 1,000 instances that is most of the synth time (benchmarks/RESULTS.md). This synthesizer lets CDK write the
stack's own template (description, bootstrap-version rule, version-reporting metadata) and then merges the
rendered fragment into it before the template's hash is taken, so everything downstream is CDK's own: the template
asset and its hash, the asset manifest, bootstrap roles, the cloud assembly and its built-in validation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    DefaultStackSynthesizer,
    FileAssetSource,
    ISynthesisSession,
    Stack,
)

Json = dict[str, Any]
FRAGMENT_SECTIONS = ("Parameters", "Resources", "Outputs")
HEADER_KEYS = ("Description", "Transform", "AWSTemplateFormatVersion", "Metadata")
"""Top-level keys CDK writes before any element's section (stack properties, not elements)."""


def merge_template(own: Json, fragment: Json) -> Json:
    """The template CDK would write had the fragment's entries been constructs created before CDK's own (the
    bootstrap-version parameter and rule, CDKMetadata): header keys, then the fragment's sections, then CDK's,
    each section keeping the fragment's entries first. Key order matters: the hash of these bytes names the
    template asset, so the same inputs must give the same bytes."""
    merged: Json = {key: own[key] for key in HEADER_KEYS if key in own}
    for section in FRAGMENT_SECTIONS:
        if section in fragment:
            merged[section] = dict(fragment[section])
    unknown = set(fragment) - set(FRAGMENT_SECTIONS)
    if unknown:
        raise ValueError(f"a fragment has only {', '.join(FRAGMENT_SECTIONS)}, not {sorted(unknown)}")
    for section, entries in own.items():
        if section in HEADER_KEYS:
            continue
        if section not in merged:
            merged[section] = entries
            continue
        clash = merged[section].keys() & entries.keys()
        if clash:
            raise ValueError(f"the fragment and CDK both define {section} {sorted(clash)}")
        merged[section].update(entries)
    return merged


def template_text(template: Json) -> str:
    """As CDK writes templates (`JSON.stringify(template, undefined, 1)`)."""
    return json.dumps(template, indent=1, ensure_ascii=False)


class FragmentStackSynthesizer(DefaultStackSynthesizer):
    """DefaultStackSynthesizer (same bootstrap, roles, assets) plus the stack's rendered fragment.

    One instance per stack: `reusable_bind` binds this very object (CDK would bind a copy made in Node, which
    jsii cannot tell apart from this one, so Python could not reach the bound copy)."""

    def __init__(self) -> None:
        super().__init__()
        self._fragment: Json | None = None

    def set_fragment(self, fragment: Json) -> None:
        self._fragment = fragment

    @jsii.member(jsii_name="reusableBind")
    def reusable_bind(self, stack: Stack) -> FragmentStackSynthesizer:
        self.bind(stack)
        return self

    @jsii.member(jsii_name="synthesizeTemplate")
    def _synthesize_template(
        self,
        session: ISynthesisSession,
        lookup_role_arn: str | None = None,
        lookup_role_external_id: str | None = None,
        lookup_role_additional_options: Any = None,
    ) -> FileAssetSource:
        written = super()._synthesize_template(
            session, lookup_role_arn, lookup_role_external_id, lookup_role_additional_options
        )
        if self._fragment is None:
            raise ValueError(f"{self._bound_stack.stack_name}: the stack never set its fragment")
        if written.file_name is None:  # CDK always names the template file; the type says it may not
            raise ValueError(f"{self._bound_stack.stack_name}: CDK wrote its template without a file name")
        path = Path(session.outdir) / written.file_name
        text = template_text(merge_template(json.loads(path.read_text(encoding="utf-8")), self._fragment))
        data = text.encode()
        path.write_bytes(data)
        return FileAssetSource(
            source_hash=hashlib.sha256(data).hexdigest(),
            file_name=written.file_name,
            packaging=written.packaging,
            deploy_time=written.deploy_time,
            display_name=written.display_name,
        )
