"""Which data-parallel rank steps which parameter (engine.distributed_optimizer)."""

from oreal.engines.megatron.optimizer_shards import assign_owners


def test_owners_take_the_largest_parameter_left_in_turn_of_their_load():
    # loads after each assignment: a 10|0, b 10|7, c 10|12, d 14|12, e 14|13
    sizes = {"e": 1, "c": 5, "a": 10, "d": 4, "b": 7}
    assert assign_owners(sizes, 2) == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 1}


def test_equal_sizes_keep_their_order_and_every_rank_gets_one():
    assert assign_owners({"x": 3, "y": 3, "z": 3}, 3) == {"x": 0, "y": 1, "z": 2}
    assert assign_owners({"x": 3, "y": 3, "z": 3}, 1) == {"x": 0, "y": 0, "z": 0}


def test_the_split_is_within_one_parameter_of_even():
    sizes = {f"layer{i}.{w}": n for i in range(8) for w, n in (("qkv", 3 * 64 * 64), ("proj", 64 * 64), ("norm", 64))}
    owners = assign_owners(sizes, 4)
    load = [sum(n for k, n in sizes.items() if owners[k] == r) for r in range(4)]
    assert max(load) - min(load) <= max(sizes.values())
    assert sum(load) == sum(sizes.values())
