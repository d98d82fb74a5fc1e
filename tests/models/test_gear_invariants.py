"""The gradient routing of one GEAR iteration (DESIGN.md, "One GEAR iteration"), proven through
the real ``train_step`` of the shipped tiny stage-1 config of each quantizer family (VQ, LFQ,
IBQ), and of the text-to-image stage-1 config (VQ, the AR conditioned on a caption prefix from
the tiny frozen T5 encoder, caption dropout on), with the optimizer wrappers built as the
runner builds them (``build_optim_wrapper`` from
the config's ``optim_wrapper``):

- the next-token loss (the whole prior step) produces no gradient on any tokenizer parameter;
- the soft-branch alignment reaches the encoder and the codebook where one is learnt (VQ, IBQ;
  LFQ: the encoder only), never the decoder, and produces no gradient on the prior or the
  discriminator;
- the AR and projectors are unchanged by the tokenizer step; the tokenizer is unchanged by the
  discriminator and prior steps (and by the EMA update);
- both EMAs follow the configured decay (checked on the exact value after a second step);
- early exit gives the same hidden state and the same tokenizer gradients;
- the straight-through read-out's forward value is the hard one-hot.

How the phases are observed without reaching into the model: a hook on every parameter of the
three groups records each gradient *produced* (before accumulation and clipping), and step hooks
on the three torch optimizers mark where one phase ends and the next begins. A gradient produced
between the discriminator's step and the prior's step is the prior phase's. No hook firing is
stricter than a zero gradient: a tokenizer parameter connected to the NTP loss through a head
that happens to be zero still fails.
"""
import copy
import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from gear.registry import MODELS
from gear.utils.frozen import frozen

from ..conftest import REPO

FAMILIES = ('vq', 'lfq', 'ibq', 'vq_t2i')
SHIPPED = {f: f'{REPO}/configs/gear/gear_{f}_tiny_fashionmnist.py' for f in FAMILIES[:3]}
SHIPPED['vq_t2i'] = f'{REPO}/configs/gear/gear_vq_tiny_fashionmnist_t2i.py'
TEXT_ENCODER = {}  # the tiny T5 of the t2i_data fixture (set by ``shipped``)
CAPTIONS = ['a photo of a coat', 'a grey ankle boot on a black background']
# What the soft alignment moves, beyond the encoder (REFERENCE.md, "Distances per family"):
# the quantizer's learnt codebook and the quant conv before it; LFQ has neither.
_CODEBOOK = {'quant_conv.weight', 'quant_conv.bias', 'quantizer.embedding.weight'}
SOFT_REACHES = dict(vq=_CODEBOOK, lfq=set(), ibq=_CODEBOOK, vq_t2i=_CODEBOOK)
GROUPS = ('tokenizer', 'discriminator', 'prior')
PHASES = ('tokenizer', 'discriminator', 'prior', 'after')  # gradients produced before each step

K = 16
TINY_GEAR = dict(
    type='GEAR',
    tokenizer=dict(type='VQTokenizer', ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=8,
                   quantizer=dict(type='VectorQuantizer', codebook_size=K, embed_dim=4)),
    discriminator=dict(type='PatchGANDiscriminator', base_channels=8, num_layers=2),
    recon_loss=dict(type='L1Loss'),
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=64)),
    prior=dict(ar=dict(type='LlamaGenGPT', dim=32, n_layer=2, n_head=2, vocab_size=K,
                       block_size=64, num_classes=10, ffn_multiple_of=32),
               align_loss=dict(type='REPALoss', projector_hidden_dim=32), align_depth=1),
    readout=dict(type='SoftReadout', tau=0.1), lambda_align=0.5, lambda_ar=0.5, ema_decay=0.9)
_opt = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2))
OPTIM = dict(constructor='ModuleOptimWrapperConstructor', tokenizer=_opt, discriminator=_opt,
             prior=_opt)


def data(n=2):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.tensor([3, 7])[:n]


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def unchanged(before, module):
    return all(torch.equal(before[k], v) for k, v in module.state_dict().items())


# ---------------------------------------------------------------- the shipped model, observed
def shipped_cfg(family, **model):
    """The shipped stage-1 config; only the stage-0 checkpoint is not loaded (none here)."""
    cfg = Config.fromfile(SHIPPED[family])
    cfg.model.init_from = None
    if 'text_encoder' in cfg.model:
        cfg.model.text_encoder.update(path=TEXT_ENCODER['path'], cache_dir=None)
    cfg.model.update(model)
    return cfg


class PhaseRecorder:
    """Per train_step: the optimizer steps in order, the gradients produced before each (summed
    per parameter), and the state of the three groups at 'start', 'before {group}' and
    'after {group}' (its optimizer step), 'phase 2' (the first discriminator call after the
    tokenizer step: step (1) is over, frozen modules have their buffers back) and 'end'
    (after the EMA update)."""

    def __init__(self, model, optim_wrapper):
        self.model, self.steps = model, []
        for group in GROUPS:
            for name, p in getattr(model, group).named_parameters():
                p.register_hook(partial(self._grad, group, name))
            optimizer = optim_wrapper[group].optimizer
            optimizer.register_step_pre_hook(lambda *_, g=group: self._step(g))
            optimizer.register_step_post_hook(lambda *_, g=group: self._stepped(g))
        model.discriminator.register_forward_pre_hook(self._discriminator_call)

    def states(self):
        return {g: snapshot(getattr(self.model, g)) for g in GROUPS}

    def train_step(self, batch, optim_wrapper, it):
        MessageHub.get_current_instance().update_info('iter', it)
        self.cur = dict(order=[], grads=[{g: {} for g in GROUPS}], states=dict(start=self.states()))
        logs = self.model.train_step(batch, optim_wrapper)
        self.cur['states']['end'] = self.states()
        self.cur['grads'] += [{g: {} for g in GROUPS} for _ in range(4 - len(self.cur['grads']))]
        self.cur['ema'] = {g: [p.detach().clone() for p in getattr(self.model, f'{g}_ema')
                                .module.parameters()] for g in ('tokenizer', 'prior')}
        self.cur['ema_steps'] = tuple(int(getattr(self.model, f'{g}_ema').steps)
                                      for g in ('tokenizer', 'prior'))
        self.steps.append(self.cur)
        return logs

    def _grad(self, group, name, grad):
        produced = self.cur['grads'][-1][group]
        produced[name] = produced.get(name, 0) + grad.detach().clone()

    def _step(self, group):
        self.cur['order'].append(group)
        self.cur['states'][f'before {group}'] = self.states()

    def _discriminator_call(self, *_):
        if 'after tokenizer' in self.cur['states'] and 'phase 2' not in self.cur['states']:
            self.cur['states']['phase 2'] = self.states()  # step (2)'s first D forward

    def _stepped(self, group):
        self.cur['states'][f'after {group}'] = self.states()
        self.cur['grads'].append({g: {} for g in GROUPS})


_RUNS = itertools.count()


def run_shipped(family, steps=2, **model):
    return run_config(shipped_cfg(family, **model), steps)


def run_config(cfg, steps=2, hub_info=None):
    """``steps`` train steps of ``cfg``'s model on one fixed batch, recorded; ``hub_info``: message
    hub entries for the run (as the runner's hooks set them), removed afterwards."""
    # a new hub is the current one (mmengine's is the latest created): the model reads it
    hub = MessageHub.get_instance(f'gear-invariants-run-{next(_RUNS)}')
    hub.update_info_dict(hub_info or {})
    torch.manual_seed(0)
    m = MODELS.build(cfg.model).train()
    optim = build_optim_wrapper(m, copy.deepcopy(cfg.optim_wrapper))  # as the runner does
    rec = PhaseRecorder(m, optim)
    g = torch.Generator().manual_seed(1)
    batch = dict(img=torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, label=torch.tensor([3, 7]),
                 caption=CAPTIONS)  # a class model reads the labels, a T2I model the captions
    try:
        logs = [rec.train_step(batch, optim, it) for it in range(steps)]
    finally:
        hub.update_info_dict({k: None for k in hub_info or {}})
    return cfg, m, rec, logs


@pytest.fixture(scope='module', params=FAMILIES)
def shipped(request):
    """Two steps of a family's shipped model (the second starts from moved weights and EMAs)."""
    if request.param == 'vq_t2i':
        TEXT_ENCODER['path'] = request.getfixturevalue('t2i_data')['encoder']
    return (request.param, *run_shipped(request.param))


def produced(step, phase, group):
    """{param name: gradient} produced for ``group`` during ``phase`` of one train_step."""
    return step['grads'][PHASES.index(phase)][group]


def state(step, at):
    """The groups' state at 'start', 'before {group}' / 'after {group}' (its optimizer step),
    'phase 2' or 'end' of one train_step (see ``PhaseRecorder``)."""
    return step['states'][at]


def same(a, b):
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_each_train_step_steps_the_three_groups_once_in_order(shipped):
    _, _, _, rec, logs = shipped
    for step, log in zip(rec.steps, logs):
        assert step['order'] == list(GROUPS)
        assert {'tokenizer/loss_align_soft', 'tokenizer/loss_gan', 'tokenizer/loss_perceptual',
                'discriminator/loss', 'prior/loss_ntp', 'prior/loss_align'} <= set(log)


def test_ntp_loss_never_reaches_the_tokenizer(shipped):
    _, _, m, rec, _ = shipped
    ar = {n for n, _ in m.prior.named_parameters() if n.startswith('ar.')}
    for step in rec.steps:
        assert produced(step, 'prior', 'tokenizer') == {}  # no tokenizer gradient at all
        prior = produced(step, 'prior', 'prior')
        assert ar <= set(prior) and any(g.any() for g in prior.values())  # it trains the AR
        assert produced(step, 'tokenizer', 'tokenizer')  # the recorder does see the tokenizer
        assert produced(step, 'after', 'tokenizer') == {}


def test_soft_alignment_reaches_the_tokenizer_and_nothing_else(shipped):
    family, cfg, _, rec, _ = shipped
    for step in rec.steps:  # the tokenizer step: no gradient on the prior or D ...
        assert produced(step, 'tokenizer', 'prior') == {}
        assert produced(step, 'tokenizer', 'discriminator') == {}
        assert same(state(step, 'start')['prior'], state(step, 'after tokenizer')['prior']) == []
    # ... and the soft alignment is what moves the encoder (and the learnt codebook): the same
    # first step with lambda = 0 differs exactly there, not in the decoder
    assert cfg.model.lambda_align > 0
    _, _, off, _ = run_shipped(family, steps=1, lambda_align=0.0)
    on, off = produced(rec.steps[0], 'tokenizer', 'tokenizer'), produced(off.steps[0], 'tokenizer', 'tokenizer')
    moved = {n for n in on if not torch.equal(on[n], off.get(n, torch.zeros_like(on[n])))}
    assert any(n.startswith('encoder.') for n in moved)
    assert {n for n in moved if not n.startswith('encoder.')} == SOFT_REACHES[family]


def test_prior_is_unchanged_by_the_tokenizer_step_and_the_tokenizer_by_the_others(shipped):
    _, _, _, rec, _ = shipped
    for step in rec.steps:
        start = state(step, 'start')
        tok = state(step, 'phase 2')  # step (1) is over
        assert same(start['prior'], tok['prior']) == []  # AR + projectors
        assert same(start['discriminator'], tok['discriminator']) == []  # D, BN buffers too
        assert same(start['tokenizer'], tok['tokenizer'])  # the tokenizer did step
        for later in ('after discriminator', 'after prior', 'end'):  # (2), (3), the EMA update
            assert same(state(step, 'after tokenizer')['tokenizer'],
                        state(step, later)['tokenizer']) == [], later
        for phase in ('discriminator', 'prior', 'after'):
            assert produced(step, phase, 'tokenizer') == {}, phase
        assert same(tok['discriminator'], state(step, 'after discriminator')['discriminator'])
        assert same(state(step, 'before prior')['prior'], state(step, 'after prior')['prior'])
        assert same(state(step, 'after prior')['prior'], state(step, 'end')['prior']) == []


def check_ema_decay(cfg, m, rec):
    decay = cfg.model.ema_decay
    for group in ('tokenizer', 'prior'):
        names = [n for n, _ in getattr(m, group).named_parameters()]
        o1, o2 = ([state(step, 'end')[group][n] for n in names] for step in rec.steps)
        e1, e2 = (step['ema'][group] for step in rec.steps)
        for e, o in zip(e1, o1):  # mmengine's first update copies the online weights
            assert torch.equal(e, o)
        for n, e, a, b in zip(names, e2, o1, o2):  # then ema = decay * ema + (1 - decay) * online
            torch.testing.assert_close(e, a + (1 - decay) * (b - a), rtol=1e-6, atol=1e-8,
                                       msg=n)
        assert sum(not torch.equal(a, b) for a, b in zip(o1, o2)) > len(names) // 2  # moved


def test_both_emas_follow_the_configured_decay(shipped):
    check_ema_decay(*shipped[1:4])  # the shipped 0.99


def test_both_emas_follow_a_decay_far_from_the_shipped_one():
    check_ema_decay(*run_shipped('vq', ema_decay=0.75)[:3])


def test_under_gradient_accumulation_the_emas_update_on_optimizer_steps_only():
    """accumulative_counts=2: the optimizers step on iterations 2 and 4; the EMAs too (their
    step counters, and weights that stay put on iteration 3)."""
    cfg = shipped_cfg('vq')
    for group in GROUPS:
        cfg.optim_wrapper[group].accumulative_counts = 2
    _, _, rec, _ = run_config(cfg, steps=4)
    assert [step['order'] for step in rec.steps] == [[], list(GROUPS), [], list(GROUPS)]
    assert [step['ema_steps'] for step in rec.steps] == [(0, 0), (1, 1), (1, 1), (2, 2)]
    for group in ('tokenizer', 'prior'):  # iteration 3 stepped nothing: the EMAs did not move
        assert all(torch.equal(a, b) for a, b in zip(rec.steps[1]['ema'][group],
                                                      rec.steps[2]['ema'][group]))


def test_assignment_statistics_are_computed_on_logged_steps_only():
    """LogSyncHook puts the log interval in the message hub; with 2, the (B, N, K) statistics
    come with iterations 2 and 4 only."""
    *_, logs = run_config(shipped_cfg('vq'), steps=4, hub_info=dict(log_interval=2))
    assert [any(k.startswith('assign/') for k in log) for log in logs] == [False, True, False, True]
    assert {'assign/natural_entropy', 'assign/soft_top1'} <= set(logs[1])


# ---------------------------------------------------------------- components, on TINY_GEAR
@pytest.fixture(scope='module')
def built():
    torch.manual_seed(0)
    MessageHub.get_instance('gear-invariants').update_info('iter', 0)
    return MODELS.build(TINY_GEAR)


@pytest.fixture
def model(built):
    m = copy.deepcopy(built).train()
    return m, build_optim_wrapper(m, copy.deepcopy(OPTIM))


def test_early_exit_gives_identical_hidden_state_and_tokenizer_gradients(model):
    m, _ = model
    x, cond = data()
    y = m.teacher_features(x)
    results = []
    for early in (True, False):
        m.tokenizer.zero_grad()
        _, q = m.tokenizer(x)
        with frozen(m.prior, eval_mode=True):
            probs = m.readout(q.d)[:, :-1]  # (B, N - 1, K)
            out = m.prior.ar(probs, cond, return_hidden_at=m.prior.align_depth, early_exit=early)
            assert (out.logits is None) == early
            loss, _ = m.prior.align_loss(out.hidden, y)
            loss.backward()
        results.append((out.hidden.detach(), [p.grad.clone() for p in m.tokenizer.encoder.parameters()]))
    (h1, g1), (h2, g2) = results
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_straight_through_readout_forward_is_the_hard_one_hot(model):
    m, _ = model
    from gear.registry import READOUTS
    st = READOUTS.build(dict(type='StraightThroughReadout', tau=0.1))
    _, q = m.tokenizer(data()[0])
    probs = st(q.d)  # (B, N, K)
    assert torch.equal(probs, F.one_hot(q.indices.flatten(1), K).to(probs.dtype))
