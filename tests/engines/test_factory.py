from oreal.config.schema import POLICY_ENGINES, ROLLOUT_ENGINES
from oreal.engines.factory import POLICY_BUILDERS, ROLLOUT_BUILDERS


def test_every_configurable_engine_has_a_builder():
    assert set(ROLLOUT_BUILDERS) == set(ROLLOUT_ENGINES)
    assert set(POLICY_BUILDERS) <= set(POLICY_ENGINES)
