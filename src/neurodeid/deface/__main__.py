import sys

from ..cli import main

sys.exit(main(["deface", *sys.argv[1:]]))
