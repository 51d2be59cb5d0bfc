"""The suite's certificates: the kit's throwaway CA (:mod:`smtpproto.testing.certificates`),
with a good certificate that also covers every name the suite's servers answer to.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import certificates
    from testing.certificates import CertFiles, CertKind, TLSMaterial
else:
    from smtpproto.testing import certificates
    from smtpproto.testing.certificates import CertFiles, CertKind, TLSMaterial

__all__ = ["SUITE_IDENTITIES", "CertFiles", "CertKind", "TLSMaterial", "make_tls_material"]

#: The Postfix instance's names and the MX hosts of the default DNS zone (see
#: ``tests.servers.dnsmasq.DEFAULT_ZONE``), besides the kit's loopback names.
SUITE_IDENTITIES: tuple[str, ...] = (
    "mx1.test",
    "mx2.test",
    "*.test",
    "postfix.test",
    "*.postfix.test",
    "*.mx.test",
)


def make_tls_material(directory: Path, extra_identities: Iterable[str] = ()) -> TLSMaterial:
    """The kit's CA and certificates in ``directory``, covering the suite's names too."""
    return certificates.make_tls_material(directory, (*SUITE_IDENTITIES, *extra_identities))
