"""``python benchmarks/plain_keras.py ARGS`` is ``python -m cnnlab.bench.contenders.plain_keras ARGS``.

The contender lives in the package, so ``cnnlab bench`` finds it in an installed wheel too.
"""

from cnnlab.bench.contenders.plain_keras import main

if __name__ == "__main__":
    main()
