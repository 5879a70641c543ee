"""Measurements that only make sense in a checkout (kernels, backends, the scratch LeNet-5 run), and
``python -m benchmarks`` (= ``cnnlab bench``). The contenders ``cnnlab bench`` runs are package
modules: :mod:`cnnlab.bench.contenders`."""
