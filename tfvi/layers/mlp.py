"""A multilayer perceptron layer: the trunk of every encoder and decoder."""

import keras


@keras.saving.register_keras_serializable(package="tfvi")
class MLP(keras.layers.Layer):
    """Stack of `Dense` layers, `hidden[i]` units each, all with `activation`.

    Input `[..., n]`, output `[..., hidden[-1]]` (the input itself when `hidden` is
    empty). Any leading dimensions are kept, so `[T, K, batch, d]` samples go through
    as they are.
    """

    def __init__(self, hidden=(), activation="tanh", **kwargs):
        super().__init__(**kwargs)
        hidden = tuple(int(h) for h in hidden)
        if any(h <= 0 for h in hidden):
            raise ValueError(f"`hidden` must hold positive layer widths; got {hidden}.")
        self.hidden = hidden
        self.activation = keras.activations.get(activation)
        self._activation_name = activation
        self.dense_layers = [
            keras.layers.Dense(h, activation=activation, name=f"dense_{i}",
                               dtype=self.dtype_policy)
            for i, h in enumerate(hidden)
        ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.dense_layers:
            if not layer.built:
                layer.build(shape)
            shape = shape[:-1] + (layer.units,)
        self.built = True

    def call(self, x):
        for layer in self.dense_layers:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        if not self.hidden:
            return tuple(input_shape)
        return tuple(input_shape)[:-1] + (self.hidden[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(hidden=list(self.hidden), activation=self._activation_name)
        return config
