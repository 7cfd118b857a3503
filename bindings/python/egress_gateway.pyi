"""egress_gateway: Cilium's egress gateway policy computed exactly as Cilium does.

Load a cluster (``Engine.from_snapshot``), read the node's maps (``maps_json``, ``entries``,
``format_table``), ask what happens to a packet and why (``lookup``, ``lookup_many``,
``explain``), feed the engine events (``apply``, ``upsert_*``, ``delete_*``,
``set_devices``) and program the kernel in two phases (``take_plan``, ``ack``).
"""

import os
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, Final, Iterable, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union, final


__version__: Final[str]
__all__: list[str]
#: The verdict kinds, by number (the index is the kind number of ``lookup_many``'s records).
VERDICT_KINDS: Final[Tuple[str, str, str, str, str, str]]
#: Whether this build has the kernel calls (``Maps``; cargo feature ``bpf``).
KERNEL: Final[bool]

def cilium_version_layout(version: str) -> str:
    """The IPv4 maps Cilium ``version`` writes: ``"legacy"`` (1.18, 1.19) or ``"dual"`` (1.20)."""

_Address = Union[str, IPv4Address, IPv6Address]
_VerdictKind = Literal[
    "no_entry", "drop_no_gateway", "drop_no_egress_ip", "excluded", "forward", "masquerade"
]
_Object = Union[str, bytes, Mapping[str, Any]]
_BytesLike = Union[bytes, bytearray, memoryview, Any]

class EgressError(Exception):
    """Base of the module's errors."""

    #: The first field path, or None when the error is not about a field.
    path: Optional[str]
    #: Every (path, reason) pair.
    errors: list[tuple[str, str]]
    #: The invalid policy's name, or None.
    policy: Optional[str]

class PolicyError(EgressError):
    """An invalid policy: every field error; its previous version stays in force."""

class SnapshotError(EgressError):
    """Input that cannot be read: not YAML/JSON, or input errors, each with its path."""

class CapacityError(EgressError):
    """A map's desired state exceeds its max_entries (counted before the plan is built);
    nothing was handed out."""

class KernelError(EgressError):
    """A kernel call failed."""

    #: The errno (0 when there is none).
    errno: int

@final
class Verdict:
    """What the datapath does with a packet."""

    @property
    def kind(self) -> _VerdictKind:
        """The kind's name."""
    @property
    def gateway_ip(self) -> Optional[IPv4Address]:
        """Forward: the gateway node's IPv4; otherwise None."""
    @property
    def egress_ip(self) -> Union[IPv4Address, IPv6Address, None]:
        """Masquerade: the egress IP (the source's family); otherwise None."""
    @property
    def ifindex(self) -> Optional[int]:
        """Masquerade: the egress interface index (0: route lookup); otherwise None."""
    def to_dict(self) -> dict[str, Any]:
        """{"kind", "gateway_ip", "egress_ip", "ifindex"}, addresses as str."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Entry:
    """One map entry."""

    @property
    def source(self) -> Union[IPv4Address, IPv6Address]:
        """The endpoint IP (the key's exact source)."""
    @property
    def destination(self) -> Union[IPv4Interface, IPv6Interface]:
        """The destination prefix: .ip is the address as stored (host bits kept), .network the prefix."""
    @property
    def egress_ip(self) -> Union[IPv4Address, IPv6Address]:
        """The egress IP, of the source's family (unspecified: none)."""
    @property
    def gateway_ip(self) -> IPv4Address:
        """The gateway IPv4 (0.0.0.0: no gateway, drop; 0.0.0.1: excluded)."""
    @property
    def egress_ifindex(self) -> int:
        """The egress interface index (0: route lookup)."""
    def to_dict(self) -> dict[str, Any]:
        """The row of ``egressctl list -o json``."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class PlanOp:
    """One map operation of a plan, with the kernel's exact bytes."""

    @property
    def map(self) -> str:
        """The pinned map's name."""
    @property
    def action(self) -> Literal["upsert", "delete"]:
        """Upsert or delete."""
    @property
    def key(self) -> bytes:
        """The key's bytes."""
    @property
    def value(self) -> bytes:
        """The value's bytes (empty for a delete)."""
    @property
    def entry(self) -> Optional[Entry]:
        """The entry written, or the programmed entry deleted (None for the compact
        layout's operations, which write endpoints and rules)."""
    @property
    def subject(self) -> str:
        """What the operation writes, as text: the entry, the endpoint and its set, or the
        set's rule."""

@final
class Plan:
    """What to write, in order: every upsert, then every delete (the deletes first when
    upserting first would overflow a map and the desired state fits); acknowledge with
    Engine.ack."""

    @property
    def ops(self) -> list[PlanOp]:
        """The operations, in order."""
    @property
    def upserts(self) -> int:
        """How many operations are upserts (they come first, unless deletes_first)."""
    @property
    def deletes(self) -> int:
        """How many operations are deletes."""
    @property
    def deletes_first(self) -> bool:
        """Whether the deletes come first (upserting first would overflow a map)."""
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...

@final
class Explanation:
    """Why a packet gets its verdict: the fields of ``egressctl explain -o json``."""

    @property
    def source(self) -> str:
        """The source address."""
    @property
    def destination(self) -> str:
        """The destination address."""
    @property
    def verdict(self) -> Verdict:
        """The verdict."""
    @property
    def source_entries(self) -> int:
        """How many entries the source has."""
    @property
    def match(self) -> Optional[dict[str, Any]]:
        """The matching entry, its producer, the gateway choice and the overridden producers."""
    def to_dict(self) -> dict[str, Any]:
        """The ``egressctl explain -o json`` document."""

class _Applied(TypedDict):
    policies: int
    nodes: int
    endpoints: int
    namespaces: int
    invalid_policies: list[PolicyError]
    warnings: list[str]

class _Stats(TypedDict):
    desired_v4: int
    desired_v6: int
    programmed_v4: int
    programmed_v6: int
    max_entries: int
    max_entries_v6: int
    pending_sources: int
    policies: int
    endpoints: int
    nodes: int
    memory_bytes: int

@final
class Engine:
    """One node's egress gateway engine.

    Safe to share between threads: lookups and queries run concurrently, events and ``ack``
    take turns; no call holds the GIL while it waits for another thread's event.
    """

    def __new__(
        cls,
        local_node: str,
        selection: Literal["cilium", "consistent"] = "cilium",
        layout: Optional[Literal["v4v2", "legacy", "dual", "compact"]] = None,
        max_entries: Optional[int] = None,
        cluster: Optional[str] = None,
        *,
        cilium_version: Literal["1.18", "1.19", "1.20"] = "1.18",
    ) -> "Engine":
        """An empty engine computing the maps of ``local_node`` by ``cilium_version``'s rules
        (``layout`` None: that version's own maps; ``max_entries`` None: 16384, Cilium's
        default — 0 is refused, as every binding refuses it)."""
    @staticmethod
    def from_snapshot(
        data: Union[str, bytes, Mapping[str, Any], "os.PathLike[str]"],
        *,
        local_node: Optional[str] = None,
        selection: Literal["cilium", "consistent"] = "cilium",
        layout: Optional[Literal["v4v2", "legacy", "dual", "compact"]] = None,
        max_entries: Optional[int] = None,
        cilium_version: Literal["1.18", "1.19", "1.20"] = "1.18",
    ) -> "Engine":
        """An engine holding a snapshot's objects, as ``egressctl list -f`` reads them.

        ``data`` is snapshot text (a snapshot or a Kubernetes dump), a parsed snapshot, or a
        path. Invalid policies are left out.
        """
    @property
    def local_node(self) -> str:
        """The node whose maps are computed."""
    @property
    def selection(self) -> Literal["cilium", "consistent"]:
        """The gateway selection mode."""
    @property
    def layout(self) -> Literal["v4v2", "legacy", "dual", "compact"]:
        """The IPv4 map layout."""
    @property
    def cilium_version(self) -> Literal["1.18", "1.19", "1.20"]:
        """The Cilium version reproduced: ``"1.18"``, ``"1.19"`` or ``"1.20"``."""
    def maps_json(self) -> str:
        """The maps as JSON: exactly what ``egressctl list -o json`` prints."""
    def format_table(self) -> str:
        """The maps as ``cilium-dbg bpf egress list`` prints them ("" when empty)."""
    def entries(self) -> list[Entry]:
        """The desired entries, IPv4 first."""
    def lookup(self, src: _Address, dst: _Address) -> Verdict:
        """The verdict for a packet from ``src`` to ``dst``: an IPv4-mapped address is the IPv4
        address; different families raise ``ValueError`` (SEMANTICS B.6)."""
    def lookup_many(self, queries: _BytesLike, *, family: Literal[4, 6] = 4) -> bytes:
        """Many lookups of packed (src, dst) pairs; 28-byte records ``"<I4s16sI"``."""
    def explain(self, src: _Address, dst: _Address) -> Explanation:
        """Why a packet from ``src`` to ``dst`` gets its verdict."""
    def conflicts(self) -> list[dict[str, Any]]:
        """The keys several producers want with different bytes, and who wins."""
    def pods(self) -> list[dict[str, Any]]:
        """Where each selected endpoint's traffic leaves, per policy, from this node's view:
        ``namespace``, ``uid``, ``ips``, ``policy``, ``gateway_node``, ``gateway_ip``,
        ``egress_ipv4``, ``egress_ipv6`` (known when this node is the gateway)."""
    def diagnostics(self) -> dict[str, Any]:
        """What the loads reported: ``invalidPolicies``, ``warnings``, ``skipped``, ``conflicts``."""
    def stats(self) -> _Stats:
        """Counts and sizes."""
    def apply(self, text: Union[_Object, Sequence[Mapping[str, Any]]]) -> _Applied:
        """Applies Kubernetes objects as updates (CiliumEndpoints, slices with identities,
        Pods, nodes, namespaces, policies: B.10's precedence across events).

        Invalid policies are returned (not raised) and keep their previous version. A
        CiliumEndpoint finds its node among the nodes known when it is applied: apply
        CiliumNodes first or together.
        """
    def upsert_policy(self, policy: _Object) -> None:
        """Upserts policies, all or none (PolicyError)."""
    def delete_policy(self, name: str) -> bool:
        """Deletes a policy by name; whether it existed."""
    def upsert_node(self, node: _Object) -> None:
        """Upserts a node (the snapshot's nodes[] shape, a CiliumNode or a core Node)."""
    def delete_node(self, name: str) -> bool:
        """Deletes a node by name; whether it existed."""
    def gateway_nodes(self) -> list[dict[str, Any]]:
        """The nodes the policies may choose as gateways, whatever their health:
        [{"name", "ipv4", "ipv6", "ready", "weight"}], by name."""
    def set_node_health(
        self, name: str, *, ready: Optional[bool] = None, weight: Optional[int] = None
    ) -> bool:
        """Sets what health probes or an operator say of a node (ready, weight 0-100; None:
        the node's objects' value), kept across its object events; whether it is known."""
    def upsert_endpoint(self, endpoint: _Object) -> None:
        """Upserts an endpoint (the snapshot's endpoints[] shape)."""
    def delete_endpoint(self, uid: str) -> bool:
        """Deletes an endpoint by uid; whether it existed."""
    def upsert_namespace(self, namespace: _Object) -> None:
        """Sets a namespace's labels on its endpoints."""
    def set_devices(self, devices: Union[str, bytes, Sequence[Mapping[str, Any]]]) -> None:
        """Sets the local node's devices (the snapshot's interfaces shape)."""
    def take_plan(self) -> Plan:
        """The operations that make the programmed maps equal the desired ones."""
    def ack(self, plan: Plan, applied: Optional[int] = None) -> None:
        """Records that the first ``applied`` operations (all by default) were written."""
    def adopt(self, entries: Iterable[Entry]) -> None:
        """Makes these entries (a dump of the live maps) the programmed baseline."""

@final
class Maps:
    """The pinned egress gateway maps in one bpffs directory.

    Present only when the module was built with the kernel calls (``KERNEL`` is True:
    ``maturin build --features bpf``).
    """

    def __new__(
        cls,
        dir: "Union[str, os.PathLike[str]]",
        layout: Literal["v4v2", "legacy", "dual", "compact"] = "legacy",
        *,
        create: bool = False,
        max_entries: Optional[int] = None,
    ) -> "Maps":
        """Opens (or with ``create`` creates) the maps of ``layout`` in ``dir``."""
    def program(self, engine: Engine) -> int:
        """Takes the engine's plan, writes it, acknowledges it; how many operations were written.
        One writer per pin directory (an advisory lock on it, in any process): another writer
        holding it for longer than 10 s is a ``KernelError`` with errno ``EWOULDBLOCK``."""
    def reconcile(self, engine: Engine) -> tuple[int, int]:
        """A writer's whole cycle under the pin directory's writer lock: reads the maps,
        makes them ``engine``'s baseline, programs the difference; elements the engine cannot
        read are deleted. Returns (operations written, unreadable elements deleted)."""
    def adopt(self, engine: Engine) -> None:
        """Makes what the maps hold ``engine``'s programmed baseline (a restarted agent):
        with the ``dual`` layout both IPv4 maps, a key they disagree on written again; with
        the ``compact`` layout its elements, set ids and all."""
    def dump(self) -> list[Entry]:
        """What the maps hold, as ``cilium-dbg bpf egress list`` reads them."""
