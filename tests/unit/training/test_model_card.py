"""Specification of training.model_card: a model folder's card records the stages of its weights."""

from training.model_card import model_card, training_section


def test_a_stage_trained_again_replaces_the_earlier_record_of_that_stage():
    vae = training_section("motion VAE", {"steps": 10}, {})
    old_stage1 = training_section("denoiser stage 1", {"steps": 100}, {})
    new_stage1 = training_section("denoiser stage 1", {"steps": 900}, {})

    card = model_card("Motion model", "What it holds.", [vae, old_stage1, new_stage1])

    assert card.count("## Training: denoiser stage 1") == 1 and "- steps: 900" in card
    assert "- steps: 100\n" not in card
    assert card.index("## Training: motion VAE") < card.index("## Training: denoiser stage 1")
