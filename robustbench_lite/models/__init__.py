"""Content: turning a file or a zoo name into a ``core.Model``.

Reads state_dict checkpoints (``torch.load(weights_only=True)``), TorchScript files (only when
the caller trusts them) and ONNX graphs (converted into torch modules).

May import: ``core`` and the other content rooms (``zoo``, ``datasets``, ``worlds``); never the
harness (``suite``, ``report``) or the faces (``cli``, ``pytest_plugin``).
"""
