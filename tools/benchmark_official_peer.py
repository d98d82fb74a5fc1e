"""The official GEAR release's side of ``tools/benchmark_official.py``: its modules and its step.

The peer (``--peer-dir``, a checkout of Tencent-Hunyuan/GEAR) is imported from its files, never
copied into gear: ``models/vq_model.py`` (``VQModel``), ``models/llamagen.py`` (``Transformer``),
``src/losses`` (``ReconstructionLossVQ``: L1, LPIPS, quantizer terms, its ``NLayerDiscriminator``),
``src/utils.py`` (``get_constant_schedule_with_warmup``); the loss yaml is read with PyYAML
(``OmegaConf.load`` gives the same keys). ``src/train_gear.py`` imports accelerate, wandb and
omegaconf at its top, none of which the step needs, so its helpers (``ProjectorBank``,
``repa_align_loss``, ``project_repa``, ``update_ema``, ``requires_grad``) are compiled from its
source by name (``ast``), unchanged; those packages need not be installed. Its training step is
the body of ``main()``, which cannot be imported: ``OfficialStep.step`` replays it statement by
statement in its order (teacher under no_grad + autocast; one VQ forward; the generator loss,
the soft branch early-exit and alignment, backward, clip, step, scheduler, zero_grad; the
discriminator loss, backward, clip, step; the AR step; both EMAs), with accelerate's calls as
what they do on one process (``backward`` = ``loss.backward()``, ``autocast`` =
``torch.autocast(bf16)`` under ``--amp bf16``, ``clip_grad_norm_`` = torch's). Its per-step
diagnostics (entropies, top-k masses, codebook usage through ``gather`` / ``unique``) and its
``.item()`` logging are not part of the three phases and are left out unless
``--peer-diagnostics`` (gear computes ``assignment_stats`` on logged steps only: the config's
log interval is set as the runner sets it).

Both sides run eager: the release compiles ``vq``, ``ar`` and the loss module by default
(``--compile``), gear's blocks compile with ``compile=True``; neither is timed here. Its loss
module's ``@torch.cuda.amp.autocast(enabled=False)`` does not turn a CPU autocast off, so on a
CPU under ``--amp bf16`` its LPIPS and discriminator run in bf16 as written (on a GPU, fp32).
"""
import ast
import contextlib
import copy
import os
import os.path as osp
import sys
import time
from collections import OrderedDict, defaultdict
from types import SimpleNamespace
from typing import Dict

import torch
import torch.nn.functional as F

PEER_FILES = ('models/vq_model.py', 'models/llamagen.py', 'src/train_gear.py',
              'src/losses/losses.py', 'src/utils.py', 'src/configs/loss_l1_lpips_gan_vq.yaml')
PEER_HELPERS = ('build_repa_projector', 'ProjectorBank', 'update_ema', 'requires_grad',
                'repa_align_loss', 'project_repa')
VGG_FILE = 'vgg16-397923af.pth'  # torchvision's VGG16_Weights.IMAGENET1K_V1 file name


def load_helpers(path: str, names) -> SimpleNamespace:
    """Top-level functions / classes ``names`` of a Python file, compiled from its source as
    written (without running the rest of the module, e.g. its imports)."""
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
             and n.name in names]
    missing = set(names) - {n.name for n in nodes}
    if missing:
        sys.exit(f'{path}: no top-level {sorted(missing)} (a different release?)')
    namespace = dict(torch=torch, nn=torch.nn, F=F, OrderedDict=OrderedDict)  # its imports
    exec(compile(ast.Module(body=nodes, type_ignores=[]), path, 'exec'), namespace)
    return SimpleNamespace(**{n: namespace[n] for n in names})


def import_peer(peer_dir: str) -> SimpleNamespace:
    """The release's modules and helpers from its checkout."""
    peer_dir = osp.abspath(peer_dir)
    sys.path.insert(0, peer_dir)
    from models.llamagen import ModelArgs as ARArgs, Transformer
    from models.vq_model import ModelArgs as VQArgs, VQModel
    from src.losses import ReconstructionLossVQ
    from src.utils import get_constant_schedule_with_warmup
    helpers = load_helpers(osp.join(peer_dir, 'src', 'train_gear.py'), PEER_HELPERS)
    return SimpleNamespace(VQModel=VQModel, VQArgs=VQArgs, Transformer=Transformer,
                           ARArgs=ARArgs, ReconstructionLossVQ=ReconstructionLossVQ,
                           schedule=get_constant_schedule_with_warmup, dir=peer_dir,
                           **vars(helpers))


@contextlib.contextmanager
def offline_lpips_files(vgg: str, heads: str, workdir: str):
    """Where the release's LPIPS looks: torchvision's hub cache and $WORKSPACE/pretrained/lpips,
    pointed (for the block) at a directory holding links to the two files."""
    hub = osp.join(workdir, 'hub')
    os.makedirs(osp.join(hub, 'checkpoints'), exist_ok=True)
    os.makedirs(osp.join(workdir, 'pretrained', 'lpips'), exist_ok=True)
    for src, dst in ((vgg, osp.join(hub, 'checkpoints', VGG_FILE)),
                     (heads, osp.join(workdir, 'pretrained', 'lpips', 'vgg.pth'))):
        if not osp.exists(dst):
            os.symlink(src, dst)
    saved_hub, saved_ws = torch.hub.get_dir(), os.environ.get('WORKSPACE')
    torch.hub.set_dir(hub)
    os.environ['WORKSPACE'] = workdir
    try:
        yield
    finally:
        torch.hub.set_dir(saved_hub)
        if saved_ws is None:
            os.environ.pop('WORKSPACE', None)
        else:
            os.environ['WORKSPACE'] = saved_ws


def peer_loss_config(peer_dir: str):
    """``src/configs/loss_l1_lpips_gan_vq.yaml`` with attribute access (as OmegaConf's)."""
    import yaml
    from mmengine.config import ConfigDict
    with open(osp.join(peer_dir, 'src', 'configs', 'loss_l1_lpips_gan_vq.yaml')) as f:
        return ConfigDict(yaml.safe_load(f))


class OfficialStep:
    """The release's modules, optimizers and step (``src/train_gear.py`` main loop) at ``sizes``
    (``benchmark_official.TINY``), with the loss weights, EMA decay and AdamW settings of
    ``gear_cfg`` (the same numbers as the release's yaml and script); ``args``: ``amp`` and
    ``peer_diagnostics``; the step number given to the loss is ``first_step + i``."""

    def __init__(self, peer, sizes: dict, gear_cfg, teacher, args, device, vgg: str, heads: str,
                 workdir: str, first_step: int):
        t, m = sizes, gear_cfg.model
        self.peer, self.teacher, self.device, self.args = peer, teacher, device, args
        self.first_step = first_step
        self.temperature, self.depth = m.readout.tau, t['align_depth']
        self.vae_coeff, self.proj_coeff = m.lambda_align, m.lambda_ar
        self.decay = m.ema_decay
        vq = peer.VQModel(peer.VQArgs(codebook_size=t['codebook_size'],
                                      codebook_embed_dim=t['embed_dim'],
                                      encoder_ch_mult=list(t['ch_mult']),
                                      decoder_ch_mult=list(t['ch_mult']),
                                      z_channels=t['z_channels']))
        vq.quantize.entropy_loss_ratio = float(m.tokenizer.quantizer.entropy_loss_ratio)
        self.vq = vq.to(device)
        self.ar = peer.Transformer(peer.ARArgs(
            dim=t['dim'], n_layer=t['n_layer'], n_head=t['n_head'],
            multiple_of=t['ffn_multiple_of'], block_size=(t['resolution'] // 2) ** 2,
            vocab_size=t['codebook_size'], num_classes=t['num_classes'], cls_token_num=1,
            resid_dropout_p=0.1, ffn_dropout_p=0.1, token_dropout_p=0.1, drop_path_rate=0.0,
            use_checkpoint=False)).to(device)
        self.projectors = peer.ProjectorBank(in_dim=t['dim'], hidden=t['projector_dim'],
                                             out_dims=[teacher.feature_dim]).to(device)
        self.ema = copy.deepcopy(self.ar).to(device)
        peer.requires_grad(self.ema, False)
        self.vq_ema = copy.deepcopy(self.vq).to(device)
        peer.requires_grad(self.vq_ema, False)
        self.vq_ema.eval()
        with offline_lpips_files(vgg, heads, workdir):
            self.loss_fn = peer.ReconstructionLossVQ(peer_loss_config(peer.dir)).to(device)
        adamw = gear_cfg.optim_wrapper.tokenizer.optimizer
        kw = dict(lr=adamw.lr, betas=tuple(adamw.betas), weight_decay=adamw.weight_decay,
                  eps=adamw.eps)
        self.max_grad_norm = gear_cfg.optim_wrapper.tokenizer.clip_grad.max_norm
        self.opt_ar = torch.optim.AdamW(
            list(self.ar.parameters()) + list(self.projectors.parameters()), **kw)
        self.opt_vq = torch.optim.AdamW(self.vq.parameters(), **kw)
        self.opt_disc = torch.optim.AdamW(self.loss_fn.parameters(), **kw)
        self.scheds = [peer.schedule(o, num_warmup_steps=1)
                       for o in (self.opt_ar, self.opt_vq, self.opt_disc)]
        peer.update_ema(self.ema, self.ar, decay=0.0)
        peer.update_ema(self.vq_ema, self.vq, decay=0.0)
        self.ar.eval(), self.ema.eval(), self.vq.eval(), self.vq_ema.eval()
        self.cuda = torch.device(device).type == 'cuda'

    def autocast(self):
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                              enabled=self.args.amp == 'bf16')

    def step(self, batch: dict, i: int) -> Dict[str, float]:
        """One iteration, as ``main()``'s loop body; returns seconds per section."""
        p, times, last = self.peer, defaultdict(float), [time.perf_counter()]

        def mark(name):
            if self.cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            times[name] += now - last[0]
            last[0] = now
        processed, labels = batch['img'], batch['label']
        B, L, K = processed.shape[0], self.ar.block_size, self.ar.vocab_size
        step = self.first_step + i
        zs = []
        with torch.no_grad(), self.autocast():
            zs.append(self.teacher(processed))  # the shared teacher (see the module docstring)
        mark('teacher')
        with self.autocast():
            self.vq.train()
            recon, z_q, (vq_l, commit_l, ent_l, usage), (_, _, indices), d = self.vq(
                processed, return_distance=True)
            mark('tokenizer_forward')
            if self.args.peer_diagnostics:
                diag = self.diagnostics(d, indices)
                mark('diagnostics')
            # 1) VQ generator step
            self.ar.eval()
            p.requires_grad(self.ar, False), p.requires_grad(self.projectors, False)
            vq_total, vq_loss_dict = self.loss_fn(processed, recon,
                                                  quantizer_losses=(vq_l, commit_l, ent_l),
                                                  global_step=step, mode='generator')
            soft = F.softmax(-d / float(self.temperature), dim=-1).view(B, L, K)
            _, hidden_at_tap = self.ar(idx=soft[:, :-1, :], cond_idx=labels,
                                       return_hidden_at=self.depth, early_exit=True)
            zs_tilde_vq = p.project_repa(hidden_at_tap, 1, self.projectors)
            proj_loss_vq = p.repa_align_loss(zs_tilde_vq, zs)
            vq_total = vq_total + self.vae_coeff * proj_loss_vq
            vq_total.backward()
            torch.nn.utils.clip_grad_norm_(self.vq.parameters(), self.max_grad_norm)
            self.opt_vq.step(), self.scheds[1].step(), self.opt_vq.zero_grad(set_to_none=True)
            mark('tokenizer')
            # 2) discriminator step
            d_loss, d_loss_dict = self.loss_fn(processed, recon,
                                               quantizer_losses=(vq_l, commit_l, ent_l),
                                               global_step=step, mode='discriminator')
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.loss_fn.parameters(), self.max_grad_norm)
            self.opt_disc.step(), self.scheds[2].step(), self.opt_disc.zero_grad(set_to_none=True)
            mark('discriminator')
            # 3) AR step
            self.ar.train()
            p.requires_grad(self.ar, True), p.requires_grad(self.projectors, True)
            ar_targets = indices.detach().view(B, L)
            logits, hidden_at_tap_ar = self.ar(idx=ar_targets[:, :-1], cond_idx=labels,
                                               return_hidden_at=self.depth)
            ce_loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                      ar_targets.reshape(-1))
            zs_tilde_ar = p.project_repa(hidden_at_tap_ar, 1, self.projectors)
            proj_loss_ar = p.repa_align_loss(zs_tilde_ar, zs)
            ar_total = ce_loss + self.proj_coeff * proj_loss_ar
            ar_total.backward()
            torch.nn.utils.clip_grad_norm_(
                list(self.ar.parameters()) + list(self.projectors.parameters()),
                self.max_grad_norm)
            self.opt_ar.step(), self.scheds[0].step(), self.opt_ar.zero_grad(set_to_none=True)
            mark('prior')
            p.update_ema(self.ema, self.ar, decay=self.decay)
            p.update_ema(self.vq_ema, self.vq, decay=self.decay)
            mark('ema')
        if self.args.peer_diagnostics:  # the logging block's host reads
            [v.item() for v in (ar_total, ce_loss, proj_loss_ar, vq_total, proj_loss_vq, d_loss,
                                *diag, *vq_loss_dict.values(), *d_loss_dict.values())]
            mark('diagnostics')
        return dict(times)

    @torch.no_grad()
    def diagnostics(self, d, indices):
        """The release's codebook decisiveness block (natural and soft entropies, top-k)."""
        d_det = d.detach().float()
        k_max = min(1000, d_det.shape[-1])
        out = []
        for temp in (1.0, float(self.temperature)):
            log_probs = F.log_softmax(-d_det / temp, dim=-1)
            probs = log_probs.exp()
            out.append(-(probs * log_probs).sum(dim=-1).mean())
            cum = torch.cumsum(torch.topk(probs, k=k_max, dim=-1, sorted=True)[0], dim=-1)
            out += [cum[:, min(k, k_max) - 1].mean() for k in (1, 10, 100, 1000)]
        out.append(torch.tensor(float(torch.unique(indices.detach()).numel()) / d_det.shape[-1]))
        return out
