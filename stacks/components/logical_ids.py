"""Constructs that group resources for the reader without changing their CloudFormation logical ids.

CloudFormation identifies a resource by its logical id, and CDK derives that id from the construct path
below the stack (``Compute/Alb/Resource`` -> ``Alb16C2F182``). Moving a resource into a new construct
therefore renames it, and CloudFormation *replaces* a renamed resource: a new load balancer (new DNS name),
an orphaned retained bucket, a named log group that fails to create because the old one still exists.

``TransparentConstruct`` is a construct that is skipped when logical ids are computed, provided its stack
is a ``TransparentIdsStack``: a resource at ``Compute/PublicEdge/Alb/Resource`` keeps the id of
``Compute/Alb/Resource``. So code can be split into rooms (one construct per concern) while every deployed
resource keeps its identity. ``make_unique_id`` reproduces CDK's own algorithm; ``TransparentIdsStack``
checks it against CDK for every element outside a transparent construct and refuses two elements with the
same id (which CloudFormation would otherwise silently merge into one key).
"""

from __future__ import annotations

import hashlib
import re

from aws_cdk import CfnElement, Stack
from constructs import Construct

# CDK's constants (aws-cdk-lib core/lib/private/uniqueid.ts).
_HIDDEN_ID = "Default"
_HIDDEN_FROM_HUMAN_ID = "Resource"
_HASH_LENGTH = 8
_MAX_HUMAN_LENGTH = 240
_MAX_ID_LENGTH = 255
_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def make_unique_id(components: list[str]) -> str:
    """The logical id CDK gives an element whose construct ids below its stack are ``components``.

    A single component is used as-is (alphanumerics only); otherwise the human-readable part (without
    ``Resource`` and repeated components) is followed by 8 hex digits of the MD5 of the ``/``-joined path.
    """
    components = [component for component in components if component != _HIDDEN_ID]
    if not components:
        raise ValueError("a logical id needs at least one path component")
    if len(components) == 1:
        alone = _NON_ALPHANUMERIC.sub("", components[0])
        if len(alone) <= _MAX_ID_LENGTH:
            return alone
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    human: list[str] = []
    for component in components:
        # CDK drops a component the previous one already ends with (``Service/Service`` -> ``Service``).
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "".join(_NON_ALPHANUMERIC.sub("", c) for c in human if c != _HIDDEN_FROM_HUMAN_ID)
    return readable[:_MAX_HUMAN_LENGTH] + digest[:_HASH_LENGTH].upper()


class TransparentConstruct(Construct):
    """A construct that groups resources without appearing in their logical ids (see the module docstring).

    Only valid inside a ``TransparentIdsStack``; anywhere else CDK would include it in the ids.
    """

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        if not isinstance(stack, TransparentIdsStack):
            raise TypeError(f"{type(self).__name__} must be created inside a TransparentIdsStack")
        stack.transparent_paths.add(self.node.path)


def path_components(
    path: str, stack_path: str, transparent_paths: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The construct ids of ``path`` below ``stack_path``, leaving out those of ``transparent_paths``.

    Construct ids never contain ``/`` (constructs replaces it), so the path splits unambiguously.
    """
    kept, current = [], stack_path
    for component in path[len(stack_path) + 1 :].split("/"):
        current = f"{current}/{component}"
        if current not in transparent_paths:
            kept.append(component)
    return kept


class TransparentIdsStack(Stack):
    """A stack whose ``TransparentConstruct`` children keep the logical ids of direct children of the stack.

    CDK asks the stack for an element's logical id several times per synthesis, and each question is a call
    from Node into Python, so answers are cached by construct path (paths are unique and never change).
    """

    @property
    def transparent_paths(self) -> set[str]:
        """Construct paths of the ``TransparentConstruct`` scopes inside this stack."""
        return self.__dict__.setdefault("_transparent_paths", set())

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        path = cfn_element.node.path
        cache: dict[str, str] = self.__dict__.setdefault("_logical_ids", {})
        if path in cache:
            return cache[path]
        stack_path = self.__dict__.setdefault("_stack_path", self.node.path)
        components = path_components(path, stack_path, self.transparent_paths)
        logical_id = make_unique_id(components)
        if components == path_components(path, stack_path):
            # Outside transparent constructs our id must be CDK's own: a proof on every synthesis that
            # make_unique_id still reproduces the algorithm of the installed aws-cdk-lib.
            expected = super()._allocate_logical_id(cfn_element)
            if logical_id != expected:
                raise AssertionError(f"make_unique_id gave {logical_id}, CDK {expected} for {path}")
        owner = next((other for other, known in cache.items() if known == logical_id), None)
        if owner is not None:
            # Two elements with one id would silently become one key of the template.
            raise ValueError(f"logical id {logical_id} of {path} is already used by {owner}")
        cache[path] = logical_id
        return logical_id
