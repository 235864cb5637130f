# PyInstaller runtime hook: optional add-on packages (the CLAP stack) live outside the frozen
# archive, in <bundle>/extras or in $BST_EXTRAS; both are appended to sys.path when present,
# after the bundled packages, so the bundle's own torch/numpy always win.
import os
import sys

_bundle = os.path.dirname(sys.executable)
for _p in (os.environ.get("BST_EXTRAS", ""), os.path.join(_bundle, "extras")):
    if _p and os.path.isdir(_p) and _p not in sys.path:
        sys.path.append(_p)
