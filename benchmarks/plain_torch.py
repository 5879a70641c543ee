"""``python benchmarks/plain_torch.py ARGS`` is ``python -m cnnlab.bench.contenders.plain_torch ARGS``.

The contender lives in the package, so ``cnnlab bench`` finds it in an installed wheel too.
"""

from cnnlab.bench.contenders.plain_torch import main

if __name__ == "__main__":
    main()
