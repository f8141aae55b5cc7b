"""INR ablation proxy (the paper's Table V on our data): validation noise-prediction
MSE of IND checkpoints on 24 fixed 128 px crops of validation blocks 3 and 9, same t and
noise for all, condition = Pixel-CR output on the whole image (cached outside the repo).

    PYTHONPATH=. python -m idfcr_train.ind_ablation CKPT... (from onnx/)
"""
import sys, json, numpy as np, torch
from idfcr_train.data import load_rice, split_by_block
from idfcr_train.ind import *
from idfcr_train.train_ind import with_cached_condition
torch.set_num_threads(1)
pairs = load_rice("../../shared/data/rice2_3s")
_, val = split_by_block(pairs, {"3", "9"})
val = with_cached_condition(val, "checkpoints/pixel_cr_rgb.pt", "/tmp/idfcr_ind_rgb_val_cond.npz")
rng = np.random.default_rng(0)
crops = []
for i in range(24):
    p = val[i * len(val) // 24]
    y, x = rng.integers(0, 512 - 128, 2)
    crops.append((p.cloudy[:, y:y+128, x:x+128], p.clear[:, y:y+128, x:x+128]))
cond_img = torch.from_numpy(np.stack([c for c, _ in crops])); clear = torch.from_numpy(np.stack([c for _, c in crops]))
ac = alphas_cumprod()
g = torch.Generator().manual_seed(0)
t = torch.randint(0, 1000, (len(crops),), generator=g)
out = {}
for name in sys.argv[1:]:
    st = torch.load(name, map_location="cpu")
    ae = Autoencoder(AEConfig.from_dict(st["ae_config"])); ae.load_state_dict(st["ae"]); ae.eval()
    unet = UNet(UNetConfig.from_dict(st["unet_config"])); unet.load_state_dict(st["unet"])
    cn = ControlNet(unet); cn.load_state_dict(st["control"]); den = Denoiser(unet, cn).eval()
    with torch.no_grad():
        z0, c = ae.encode(clear), ae.encode(cond_img)
        eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(1))
        mse = float(torch.nn.functional.mse_loss(den(q_sample(z0, t, eps, ac), t, c), eps))
    out[name] = {"val_eps_mse": round(mse, 5), "steps": st["steps"].get("control"), "k": st["meta"]["k_iters"], "hours": round(st["wall_s"].get("control", 0) / 3600, 3)}
    print(name, out[name], flush=True)
json.dump(out, open("models/ind_rgb.ablation.json", "w"), indent=1)
