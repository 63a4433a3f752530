"""Loss variants selected by name: every row of the paper's ablation ladder and the baselines.

Each variant is a small config dataclass (plain, no Hydra) plus a function that turns one
micro-batch of :class:`LossInputs` and the step's :class:`TokenCounts` into a
:class:`LossOutput`. The trainer only ever calls ``get_variant(cfg.name).loss(cfg, ...)``.

| ladder row (paper Table 2)                      | variant               |
|-------------------------------------------------|-----------------------|
| 1. REINFORCE, binary reward                     | ``reinforce``         |
| 2. + reward shaping (group-relative; GRPO)      | ``grpo``              |
| 3. + behaviour cloning on positives             | ``oreal_no_token_rm`` |
| 4. + token-level RM importance weights          | ``oreal``             |
| baseline: RLOO                                  | ``rloo``              |
| row 2 with row 4's token weights (factor table) | ``grpo_token_rm``     |

(Row 5, skill-based enhancement, is a data-side option and not a loss.)

Row 4 differs from row 3 in three ways, each a field of its own so that they can be added one
at a time (``conf/ladder/3a_*`` .. ``3c_*``, and ``2a_*`` .. ``2d_*`` for the GRPO loss):
``filter`` (``none`` / ``drop_uniform`` / ``pair``), ``actor_freeze_steps`` and the token
weights' ``rescale`` (``threshold`` / ``topk`` / ``uniform``: the RM trained but every weight 1).
``schedule_after_freeze`` starts the policy's learning-rate schedule at its first update
instead of at step 0 (``conf/ladder/4w_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from oreal.algo.losses import LossOutput, TokenCounts, oreal_loss, policy_gradient_loss, token_weighted_policy_gradient_loss


@dataclass
class LossInputs:
    """One micro-batch, ``[B, T]`` tensors aligned on response tokens; ``rewards``,
    ``advantages`` ``[B]``. ``ref_logprobs`` is None when the variant needs no reference
    (kl_coef 0), ``rm_scores`` None when it uses no token RM."""

    logprobs: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    ref_logprobs: Optional[torch.Tensor] = None
    rm_scores: Optional[torch.Tensor] = None


@dataclass
class AlgoConfig:
    """Fields every variant has.

    ``filter``: ``none`` keeps every sample; ``drop_uniform`` drops groups whose samples are all
    correct or all wrong; ``pair`` also keeps one random correct and one random incorrect sample
    per remaining group (advantages are computed on the full group first).
    """

    name: str = "reinforce"
    advantage_estimator: str = "none"
    filter: str = "none"
    actor_freeze_steps: int = 0
    # false (the reference): the policy's lr schedule runs through the frozen steps, so its first
    # update comes at about the peak lr with no warm-up (and Adam's first step moves every weight
    # by about lr); true: its warm-up and decay start at its first update
    schedule_after_freeze: bool = False
    kl_coef: float = 0.01
    kl_estimator: str = "k3"

    @property
    def uses_token_rm(self) -> bool:
        return False

    @property
    def uses_reference(self) -> bool:
        return self.kl_coef != 0

    @property
    def sample_weighting(self) -> dict:
        """How the loss scales a trained sample's advantage, by class (the arguments of
        :func:`oreal.algo.filters.kept_sample_metrics`): 1 for both in a plain policy gradient."""
        return {"positive_factor": 1.0, "negative_factor": 1.0, "pos_mult_adv": True}


@dataclass
class ReinforceConfig(AlgoConfig):
    name: str = "reinforce"
    advantage_estimator: str = "none"


@dataclass
class GRPOConfig(AlgoConfig):
    name: str = "grpo"
    advantage_estimator: str = "grpo"


@dataclass
class RLOOConfig(AlgoConfig):
    name: str = "rloo"
    advantage_estimator: str = "rloo"


@dataclass
class OrealNoTokenRMConfig(AlgoConfig):
    """Behaviour cloning on positives + shaped policy gradient on negatives, no token RM
    (the reference's ``oreal_wo_tokenrm`` config: no RM, no pair filter, no actor freeze)."""

    name: str = "oreal_no_token_rm"
    advantage_estimator: str = "rloo"
    positive_loss_factor: float = 1.0
    negative_loss_factor: float = 0.5
    pos_mult_adv: bool = True

    @property
    def sample_weighting(self) -> dict:
        return {"positive_factor": self.positive_loss_factor, "negative_factor": self.negative_loss_factor,
                "pos_mult_adv": self.pos_mult_adv}


@dataclass
class TokenWeightFields:
    """The fields of a variant that trains a token RM and weights the policy loss's tokens by
    it (mixed into that variant's config). ``rescale``: ``threshold`` (the ``*_threshold``
    fields), ``topk`` (the ``*_topk_ratio`` fields) or ``uniform`` (every weight 1: the RM is
    trained, and can freeze the actor, but does not touch the policy loss)."""

    rescale: str = "threshold"
    correct_threshold: float = 0.5
    incorrect_threshold: float = 0.5
    correct_topk_ratio: float = 0.25
    incorrect_topk_ratio: float = 0.25

    @property
    def uses_token_rm(self) -> bool:
        return True

    @property
    def weight_params(self) -> tuple[float, float]:
        """The (correct, incorrect) parameters of the chosen rescale (ignored by ``uniform``)."""
        if self.rescale == "threshold":
            return self.correct_threshold, self.incorrect_threshold
        return self.correct_topk_ratio, self.incorrect_topk_ratio


@dataclass
class OrealConfig(TokenWeightFields, OrealNoTokenRMConfig):
    """Full OREAL: token-RM weights, pair filter, and the token RM trained alone for the first
    ``actor_freeze_steps`` steps."""

    name: str = "oreal"
    filter: str = "pair"
    actor_freeze_steps: int = 10


@dataclass
class GRPOTokenRMConfig(TokenWeightFields, GRPOConfig):
    """GRPO's loss with OREAL's token weights (w+ on positive samples, w- on negative ones):
    the GRPO-style counterpart of row 4 for the factor table. No filter and no freeze by
    default, so that each factor is added explicitly."""

    name: str = "grpo_token_rm"


LossFn = Callable[[AlgoConfig, LossInputs, TokenCounts], LossOutput]


@dataclass(frozen=True)
class LossVariant:
    name: str
    config_cls: type[AlgoConfig]
    loss: LossFn


LOSS_VARIANTS: dict[str, LossVariant] = {}


def register_variant(name: str, config_cls: type[AlgoConfig]) -> Callable[[LossFn], LossFn]:
    def wrap(fn: LossFn) -> LossFn:
        if name in LOSS_VARIANTS:
            raise KeyError(f"loss variant {name!r} is registered twice")
        LOSS_VARIANTS[name] = LossVariant(name, config_cls, fn)
        return fn

    return wrap


def get_variant(name: str) -> LossVariant:
    try:
        return LOSS_VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown loss variant {name!r}; choose one of: {', '.join(LOSS_VARIANTS)}") from None


def _policy_gradient(cfg: AlgoConfig, batch: LossInputs, counts: TokenCounts) -> LossOutput:
    return policy_gradient_loss(
        logprobs=batch.logprobs,
        ref_logprobs=batch.ref_logprobs,
        mask=batch.mask,
        advantages=batch.advantages,
        num_action_tokens=counts.num_action_tokens,
        kl_coef=cfg.kl_coef,
        kl_estimator=cfg.kl_estimator,
    )


for _name, _cls in (("reinforce", ReinforceConfig), ("grpo", GRPOConfig), ("rloo", RLOOConfig)):
    register_variant(_name, _cls)(_policy_gradient)


@register_variant("oreal_no_token_rm", OrealNoTokenRMConfig)
def _oreal_no_token_rm(cfg: OrealNoTokenRMConfig, batch: LossInputs, counts: TokenCounts) -> LossOutput:
    return _oreal(cfg, batch, counts, rm_scores=None)


@register_variant("oreal", OrealConfig)
def _oreal_with_token_rm(cfg: OrealConfig, batch: LossInputs, counts: TokenCounts) -> LossOutput:
    if batch.rm_scores is None:
        raise ValueError("the 'oreal' variant needs token-RM scores; use 'oreal_no_token_rm' to run without one")
    return _oreal(
        cfg,
        batch,
        counts,
        rm_scores=batch.rm_scores,
        rescale=cfg.rescale,
        correct_threshold=cfg.correct_threshold,
        incorrect_threshold=cfg.incorrect_threshold,
        correct_topk_ratio=cfg.correct_topk_ratio,
        incorrect_topk_ratio=cfg.incorrect_topk_ratio,
    )


@register_variant("grpo_token_rm", GRPOTokenRMConfig)
def _grpo_token_rm(cfg: GRPOTokenRMConfig, batch: LossInputs, counts: TokenCounts) -> LossOutput:
    if batch.rm_scores is None:
        raise ValueError("the 'grpo_token_rm' variant needs token-RM scores; use 'grpo' to run without one")
    correct, incorrect = cfg.weight_params
    return token_weighted_policy_gradient_loss(
        logprobs=batch.logprobs,
        ref_logprobs=batch.ref_logprobs,
        rm_scores=batch.rm_scores,
        mask=batch.mask,
        rewards=batch.rewards,
        advantages=batch.advantages,
        num_positive_tokens=counts.num_positive_tokens,
        num_negative_tokens=counts.num_negative_tokens,
        num_action_tokens=counts.num_action_tokens,
        num_sequences=counts.num_sequences,
        kl_coef=cfg.kl_coef,
        kl_estimator=cfg.kl_estimator,
        rescale=cfg.rescale,
        correct_param=correct,
        incorrect_param=incorrect,
    )


def _oreal(cfg: OrealNoTokenRMConfig, batch: LossInputs, counts: TokenCounts, **weighting) -> LossOutput:
    return oreal_loss(
        logprobs=batch.logprobs,
        ref_logprobs=batch.ref_logprobs,
        mask=batch.mask,
        rewards=batch.rewards,
        advantages=batch.advantages,
        num_positive_tokens=counts.num_positive_tokens,
        num_negative_tokens=counts.num_negative_tokens,
        num_action_tokens=counts.num_action_tokens,
        num_sequences=counts.num_sequences,
        positive_loss_factor=cfg.positive_loss_factor,
        negative_loss_factor=cfg.negative_loss_factor,
        kl_coef=cfg.kl_coef,
        kl_estimator=cfg.kl_estimator,
        pos_mult_adv=cfg.pos_mult_adv,
        **weighting,
    )
