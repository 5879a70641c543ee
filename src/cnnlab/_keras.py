"""The one place cnnlab imports Keras: after :func:`cnnlab.backend.configure` has run."""

from cnnlab.backend import configure, quiet_native_stderr

configure()

with quiet_native_stderr():
    # On TensorFlow this also loads TF, whose C++ logger ignores the log-level variables at
    # start-up; listing the devices here makes TF probe for CUDA now, while stderr is quiet,
    # instead of printing a "failed call to cuInit" line at the first operation.
    import keras  # noqa: E402

    if keras.backend.backend() == "tensorflow":
        import tensorflow as _tf

        _tf.config.list_physical_devices()

if keras.backend.backend() == "tensorflow":
    from cnnlab.backend import default_thread_layout

    default_thread_layout()  # a run that splits its batches may change it before TensorFlow starts

if keras.backend.backend() == "torch":
    from cnnlab import torch_layout

    torch_layout.apply()  # convolutions and pooling without two layout copies each (see the module)

__all__ = ["keras"]
