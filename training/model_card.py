"""Model cards: the ``README.md`` that every model folder written by the training carries.

The card is a Hugging Face Hub model card (YAML front matter, then Markdown), so a model folder
can be uploaded as it is. It says what the folder holds and how to load it, and has one
``## Training: <stage>`` section per stage that built the model, with the data, the steps, the
final losses and the complete config; a stage that starts from an earlier stage's folder
carries that folder's sections over, so the stage-2 card tells the whole story.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SECTION_HEADING", "inherited_sections", "model_card", "training_section"]

SECTION_HEADING = "## Training: "

_FRONT_MATTER = """---
tags:
- generative-image-dynamics
- motion
- comfyui
---
"""


def training_section(stage: str, facts: dict, config: dict) -> str:
    """The Markdown section of one stage.

    Args:
        stage: the stage's name, e.g. "denoiser stage 1".
        facts: label -> value lines (data, steps, batch, losses, command).
        config: the stage's complete config.
    """
    lines = [f"{SECTION_HEADING}{stage}", ""]
    lines += [f"- {label}: {value}" for label, value in facts.items()]
    lines += ["", "Config:", "", "```json", json.dumps(config, indent=2), "```", ""]
    return "\n".join(lines)


def inherited_sections(folder: Path | None) -> list[str]:
    """The training sections of the model card in ``folder`` (none without a folder or card)."""
    card = Path(folder) / "README.md" if folder is not None else None
    if card is None or not card.is_file():
        return []
    parts = card.read_text().split("\n" + SECTION_HEADING)[1:]
    return [SECTION_HEADING + part.rstrip("\n") + "\n" for part in parts]


def model_card(title: str, description: str, sections: Sequence[str]) -> str:
    """The text of a model folder's ``README.md``.

    Args:
        title: the card's heading.
        description: what the folder holds and how to load it (Markdown).
        sections: the training sections, oldest stage first. Where two have the same heading
            (a stage trained again from a folder that already records it, e.g. denoiser stage 1
            from a complete model whose VAE it keeps), only the last is kept: the card tells the
            story of the weights it holds.
    """
    latest = {section.split("\n", 1)[0]: index for index, section in enumerate(sections)}
    sections = [
        section for index, section in enumerate(sections) if latest[section.split("\n", 1)[0]] == index
    ]
    return "\n".join(
        [
            _FRONT_MATTER,
            f"# {title}",
            "",
            description.strip(),
            "",
            "Trained with the training recipe of the Generative Image Dynamics node pack "
            "(`python -m training.train`). Before publishing, add the license that your "
            "training data allows to the front matter.",
            "",
            *sections,
        ]
    )
