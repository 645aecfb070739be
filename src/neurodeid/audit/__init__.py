"""The release audit: what is identifying (:mod:`.needles`, collected from the raw data,
private) and the scan of every released file for it (:mod:`.scan`).

The names of both modules are available from the package (``audit.audit_release``,
``audit.load_needles``...).
"""

from .._exports import module_getattr

__getattr__ = module_getattr(__name__, ("scan", "needles"))
