"""``python -m benchmarks [options]`` is ``cnnlab bench [options]``."""

import sys

from cnnlab.cli.app import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
