"""TensorBoard logs of a run: scalars per epoch and per validation, and the model graph.

Written with ``tf.summary`` (TensorFlow is always installed, whatever the Keras backend). The
graph is the traced forward pass on the TensorFlow backend (as Hsi-Pin Ma's lecture shows it in TensorBoard's
Graphs tab); on every backend the Keras model description goes to the text plugin too.
TensorBoard is a convenience: if writing fails the run goes on with a warning in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cnnlab.backend import quiet_native_stderr


class TensorBoardLog:
    def __init__(self, folder: Path, logger: logging.Logger):
        self.folder = Path(folder)
        self.logger = logger
        self._writer = None
        self._failed = False

    def _get_writer(self):
        if self._writer is None and not self._failed:
            try:
                with quiet_native_stderr():
                    import tensorflow as tf

                    self._tf = tf
                    self._writer = tf.summary.create_file_writer(str(self.folder))
            except Exception as exc:  # optional output: never stop training for it
                self._failed = True
                self.logger.warning("tensorboard: disabled (%s)", exc)
        return self._writer

    def scalars(self, step: int, values: dict) -> None:
        writer = self._get_writer()
        if writer is None:
            return
        # TensorFlow's C++ logger prints start-up notices at its first ops (when Keras runs on
        # JAX or PyTorch, these are TensorFlow's first ops); keep them off the user's terminal.
        with quiet_native_stderr(), writer.as_default():
            for name, value in values.items():
                if value is not None:
                    self._write(name, self._tf.constant(float(value), self._tf.float32), step, "scalars")
        writer.flush()

    def _write(self, tag: str, tensor, step: int, plugin: str) -> None:
        """``tf.summary.write`` with the plugin tag TensorBoard's scalar / text dashboards look for.

        ``tf.summary.scalar`` and ``tf.summary.text`` need the ``tensorboard`` package installed;
        the core writer below produces the same records (the plugins' metadata has empty content
        for version 0) without it.
        """
        from tensorflow.core.framework.summary_pb2 import SummaryMetadata

        metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin))
        self._tf.summary.write(tag, tensor, step=int(step), metadata=metadata)

    def graph(self, model, input_shape) -> None:
        """The model's forward graph (TensorFlow backend) and its Keras description (all backends)."""
        writer = self._get_writer()
        if writer is None:
            return
        tf = self._tf
        try:
            from cnnlab._keras import keras

            lines = []
            model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
            with quiet_native_stderr(), writer.as_default():
                self._write("model", tf.constant("```\n" + "\n".join(lines) + "\n```"), 0, "text")
                if keras.backend.backend() == "tensorflow":
                    forward = tf.function(lambda x: model(x, training=False))
                    concrete = forward.get_concrete_function(tf.TensorSpec((None, *input_shape), tf.float32))
                    tf.summary.graph(concrete.graph)
            writer.flush()
        except Exception as exc:  # optional output
            self.logger.warning("tensorboard: model graph not written (%s)", exc)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
