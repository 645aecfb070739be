"""The release: the dataset files (:mod:`.dataset`: description, participants, README,
listings of released files, atomic copies), one session's BIDS images (:mod:`.session`)
and one subject's release job (:mod:`.subject`, which applies the exclusions and the
reviewer's decisions).

The names of the three modules are available from the package.
"""

from .._exports import module_getattr

#: The modules of the package, in dependency order; their names are the package's.
_MODULES = ('dataset', 'session', 'subject')

__getattr__ = module_getattr(__name__, _MODULES)
