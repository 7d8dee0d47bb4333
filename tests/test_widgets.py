"""ad_magic.widgets: the widgets' names in one place, and the layering of the modules
above the engine (they use its public attributes only)."""
import re
from pathlib import Path

import pytest

import ad_magic

PACKAGE = Path(ad_magic.__file__).parent
ABOVE_THE_ENGINE = ["engine/formatting.py", "drawing/dot.py", "drawing/graph_view.py", "drawing/__init__.py",
                    "drawing/names.py", "drawing/nodes.py", "widgets/timeline.py", "widgets/export.py",
                    "widgets/stepper.py", "widgets/explorer.py", "widgets/__init__.py", "widgets/plots.py"]
PRIVATE = re.compile(r"\.(_data|_grad|_prev|_rule|_args|_mark)\b")


def test_widgets_keeps_its_names():
    from ad_magic.engine import optim
    from ad_magic.widgets import BackwardStepper, DescentExplorer, DescentRecord, explorer, stepper
    assert BackwardStepper is stepper.BackwardStepper
    assert DescentExplorer is explorer.DescentExplorer
    assert DescentRecord is optim.DescentRecord


@pytest.mark.parametrize("module", ABOVE_THE_ENGINE)
def test_modules_above_the_engine_use_its_public_attributes_only(module):
    source = (PACKAGE / module).read_text()
    uses = [(n, line.strip()) for n, line in enumerate(source.splitlines(), 1) if PRIVATE.search(line)]
    assert uses == [], f"{module} reaches into the engine's internals: {uses}"
