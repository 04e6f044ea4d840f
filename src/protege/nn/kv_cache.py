"""A KV cache for transformers' models whose layers write in place (used by protege.nn.decode).

A module of its own because it subclasses transformers' cache layer: importing it imports
transformers, which the built-in GPT-2's inference path (protege.nn.gpt2_plain) never needs.
"""

from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


def hf_in_place_cache(config, capacity: int) -> Cache:
    """`InPlaceLayer`s for `capacity` tokens; transformers' own cache for models with anything but
    full attention in every layer (sliding windows, recurrent state), whose layers know what to keep."""
    layer_types = getattr(config, "layer_types", None) or []
    if getattr(config, "sliding_window", None) or any(t != "full_attention" for t in layer_types):
        return DynamicCache(config=config)
    return Cache(layers=[InPlaceLayer(capacity) for _ in range(config.num_hidden_layers)])


class InPlaceLayer(DynamicLayer):
    """transformers' DynamicLayer, but its keys and values are views into buffers allocated once for
    `capacity` tokens and written in place: DynamicLayer concatenates, copying the whole cache at
    every step, which took a quarter of a decoding step of the built-in models."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            shape = (*key_states.shape[:-2], self.capacity)
            self.key_buffer = key_states.new_empty((*shape, key_states.shape[-1]))
            self.value_buffer = value_states.new_empty((*shape, value_states.shape[-1]))
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} tokens, {end} were written")
        self.key_buffer[..., self.length:end, :] = key_states
        self.value_buffer[..., self.length:end, :] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def batch_select_indices(self, indices):
        self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
        self._views()

    def _views(self):
        self.keys = self.key_buffer[..., :self.length, :]
        self.values = self.value_buffer[..., :self.length, :]
