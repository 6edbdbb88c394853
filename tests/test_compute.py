"""The compute table's counts, checked by hand against the model definitions."""
from ack_numpy.lab.compute import count_model
from ack_numpy.models import build_model


def test_lenet_counts():
    c = count_model(build_model("lenet"))
    # conv 24*24*20*25 + conv 8*8*50*500 + fc 800*500 + fc 500*10; ReLU on the 500 hidden units only
    assert c["multiply_adds"] == 288_000 + 1_600_000 + 400_000 + 5_000
    assert c["activations"] == 500 and c["stored_parameters"] == c["free_parameters"] == 431_080


def test_adaptive_lenet_counts_and_free_parameters_of_a_symmetric_q():
    c = count_model(build_model("adaptive-lenet"))
    # adaptive 26*26 locations * 8 channels * (81 + 2*9) + conv 9*9*16*200 + fc 256*10
    assert c["multiply_adds"] == 676 * 8 * 99 + 81 * 16 * 200 + 2_560
    assert c["activations"] == 8 * 26 * 26 + 16 * 9 * 9            # tanh of the adaptive layer, ReLU after conv 2
    assert c["stored_parameters"] == 6_514 and c["free_parameters"] == 6_514 - 8 * (81 - 45)


def test_low_rank_free_parameters():
    c = count_model(build_model("adaptive-lenet", q_form="low-rank", q_rank=2))
    assert c["stored_parameters"] - c["free_parameters"] == 8 * 2 * 2   # r^2 per channel
