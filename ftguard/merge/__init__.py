"""``ftguard merge``: combine fine-tunes of one base, tensor by tensor, and search the merging
weight under the gate.

- :mod:`ftguard.merge.methods`: the merge rules on one tensor (linear, task arithmetic, TIES,
  DARE, SLERP), as their papers define them;
- :mod:`ftguard.merge.inputs`: full models and LoRA adapters opened lazily from safetensors,
  checked to share architecture, tokenizer and base, and read one tensor at a time;
- :mod:`ftguard.merge.write`: the merged model written shard by shard, atomically;
- :mod:`ftguard.merge.live`: a merge applied in memory to the loaded base, to evaluate it;
- :mod:`ftguard.merge.sweep`: the merging weight chosen under the gate (``--sweep``), recorded
  by :mod:`ftguard.merge.sweep_record`.
"""

METHODS: tuple[str, ...] = ("linear", "task_arithmetic", "ties", "dare", "slerp")
"""The merge rules (:mod:`ftguard.merge.methods`); here so the CLI can list them without
importing torch."""
