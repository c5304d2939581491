"""A multilayer perceptron with hand-written backpropagation, as pure functions.

Derived layer by layer in ``notebooks/00_backprop_and_gradcheck.ipynb``. With L layers,
h_0 = x and for k = 1..L

    z_k = h_{k-1} W_k + b_k                                   (MLP.1)
    h_k = f(z_k)  for k < L,    out = z_L  (no activation on the output)

Reverse mode (backprop), given dout = dLoss/dout and dz_L = dout:

    dW_k = h_{k-1}^T dz_k,    db_k = sum_n dz_k                (MLP.2)
    dh_{k-1} = dz_k W_k^T,    dz_{k-1} = dh_{k-1} * f'(z_{k-1})  (MLP.3)

Forward mode (a Jacobian-vector product), given a tangent (dW_k, db_k) of the parameters:

    dz_k = dh_{k-1} W_k + h_{k-1} dW_k + db_k,   dh_k = f'(z_k) * dz_k,   dh_0 = dx (or 0)  (MLP.4)

f' is written in terms of h = f(z): tanh' = 1 - h^2, relu' = [h > 0] (0 at z = 0), identity' = 1.

Parameters are a dict of float64 arrays "W1", "b1", "W2", ...; Wk has shape (in, out). Other keys
(a Gaussian policy's "log_std") are carried along by flatten/unflatten and ignored here. The dict
that ``init_mlp`` returns is an ``MLPParams``: a plain dict that also remembers its activation, so
``mlp_forward(params, x)`` uses it. A dict you build yourself is tanh unless you pass
``activation=``. Nothing here mutates its inputs; caches hold references, so do not modify
parameters in place between a forward pass and its backward pass.
"""
import numpy as np

from rlref.errors import ConfigError, require_array

ACTIVATIONS = ("tanh", "relu", "identity")
INITS = ("orthogonal", "xavier")


class MLPParams(dict):
    """A dict of parameter arrays that remembers the hidden activation of its network."""

    def __init__(self, *args, activation="tanh", **kwargs):
        super().__init__(*args, **kwargs)
        self.activation = _check_activation(activation)

    def copy(self):
        return MLPParams({k: v.copy() for k, v in self.items()}, activation=self.activation)


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def orthogonal(shape, rng, gain=1.0):
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), times gain.

    QR of a Gaussian matrix, with the signs of R's diagonal folded into Q so that the result is
    uniformly distributed over orthogonal matrices (Saxe et al. 2014; Mezzadri 2007).
    """
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)                      # q (max, min) with orthonormal columns
    q = q * np.sign(np.diag(r))                 # fix the sign ambiguity of QR
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(gain * q)


def xavier(shape, rng, gain=1.0):
    """Glorot & Bengio (2010) uniform: entries ~ U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)),
    so that activations and gradients keep their variance through a linear layer."""
    a = gain * np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-a, a, size=shape)


def init_mlp(sizes, rng, activation="tanh", out_gain=1.0, hidden_gain=np.sqrt(2.0), init="orthogonal"):
    """Orthogonal weights (gain `hidden_gain` on hidden layers, `out_gain` on the last), zero biases;
    init="xavier" draws Glorot-uniform weights with the same gains instead (for the ablation).

    sizes: [D, H1, ..., K], at least two entries. Policies use out_gain=0.01 so that the initial
    policy is close to uniform; value functions use out_gain=1 (PPO implementation detail, see
    notebooks/05_ppo).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ConfigError(f"sizes must list at least an input and an output size, all >= 1, got {sizes}")
    _check_activation(activation)
    if init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {init!r}")
    draw = orthogonal if init == "orthogonal" else xavier
    params = MLPParams(activation=activation)
    n_layers = len(sizes) - 1
    for k in range(1, n_layers + 1):
        gain = out_gain if k == n_layers else hidden_gain
        params[f"W{k}"] = draw((sizes[k - 1], sizes[k]), rng, gain)        # (in, out)
        params[f"b{k}"] = np.zeros(sizes[k])                                 # (out,)
    return params


def n_layers(params):
    """Number of affine layers L of an MLP parameter dict."""
    L = 0
    while f"W{L + 1}" in params:
        L += 1
    if L == 0:
        raise ValueError(f"params must hold W1, b1, ...; got keys {sorted(params)}")
    return L


def _act(z, activation):
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.maximum(z, 0.0)
    return z


def act_grad(h, activation):
    """f'(z) written through h = f(z)."""
    if activation == "tanh":
        return 1.0 - h * h
    if activation == "relu":
        return (h > 0.0).astype(np.float64)
    return np.ones_like(h)


def check_input(params, x):
    """x as a finite float64 (N, D) array with D the input size of params; ValueError otherwise."""
    x = require_array("x", x, ndim=2)
    if x.shape[1] != params["W1"].shape[0]:
        raise ValueError(f"x must have shape (N, {params['W1'].shape[0]}) for W1 of shape "
                         f"{params['W1'].shape}, got {x.shape}")
    return x


def mlp_forward(params, x, activation=None, check=True):
    """out, cache = mlp_forward(params, x): x (N, D) -> out (N, K).  (MLP.1)

    check=False skips the input checks (rlref's own loops, whose inputs were checked on entry)."""
    activation = activation or getattr(params, "activation", "tanh")
    if check:
        _check_activation(activation)
        x = check_input(params, x)
    hs = [x]                                          # hs[k] = h_k, the input of layer k+1
    L = n_layers(params)
    for k in range(1, L + 1):
        z = hs[-1] @ params[f"W{k}"] + params[f"b{k}"]    # (N, H_k)   (MLP.1)
        hs.append(_act(z, activation) if k < L else z)
    out = hs.pop()                                    # (N, K); hs now holds h_0 .. h_{L-1}
    return out, {"params": params, "hs": hs, "activation": activation}


def mlp_backward(dout, cache, need_dx=True):
    """grads, dx = mlp_backward(dout, cache): reverse mode.  (MLP.2), (MLP.3)

    dout (N, K) is dLoss/dout; grads is a dict like params; dx (N, D) is dLoss/dx (None when
    need_dx=False, which skips one matrix product).
    """
    params, hs, activation = cache["params"], cache["hs"], cache["activation"]
    dz = np.asarray(dout, dtype=np.float64)
    L = len(hs)
    if dz.shape != (hs[0].shape[0], params[f"W{L}"].shape[1]):
        raise ValueError(f"dout must have the shape of out, {(hs[0].shape[0], params[f'W{L}'].shape[1])}, "
                         f"got {dz.shape}")
    grads = {}
    for k in range(L, 0, -1):
        h_prev = hs[k - 1]                                # (N, H_{k-1})
        grads[f"W{k}"] = h_prev.T @ dz                    # (H_{k-1}, H_k)   (MLP.2)
        grads[f"b{k}"] = dz.sum(axis=0)                   # (H_k,)           (MLP.2)
        if k > 1 or need_dx:
            dh = dz @ params[f"W{k}"].T                   # (N, H_{k-1})     (MLP.3)
        if k > 1:
            dz = dh * act_grad(h_prev, activation)       # (N, H_{k-1})     (MLP.3)
    ordered = {key: grads[key] for key in params if key in grads}   # params' key order
    return ordered, (dh if need_dx else None)


def mlp_jvp(dparams, cache, dx=None):
    """dout = mlp_jvp(dparams, cache): forward mode, the change of out along a parameter tangent.

    dparams is a dict like params (and dx, optionally, an input tangent (N, D)); the result
    (N, K) equals d/dt mlp_forward(params + t * dparams, x + t * dx) at t = 0.  (MLP.4)
    """
    params, hs, activation = cache["params"], cache["hs"], cache["activation"]
    L = len(hs)
    missing = [f"{p}{k}" for k in range(1, L + 1) for p in "Wb" if f"{p}{k}" not in dparams]
    if missing:
        raise ValueError(f"dparams must have every weight and bias of params; missing {missing}")
    dh = None if dx is None else np.asarray(dx, dtype=np.float64)   # tangent of h_0 = x
    for k in range(1, L + 1):
        dz = hs[k - 1] @ dparams[f"W{k}"] + dparams[f"b{k}"]        # (N, H_k)   (MLP.4)
        if dh is not None:
            dz = dz + dh @ params[f"W{k}"]
        if k < L:
            dh = act_grad(hs[k], activation) * dz                  # (N, H_k)   (MLP.4)
    return dz


def flatten(params):
    """All arrays of a parameter dict, raveled and concatenated in the dict's key order -> (P,)."""
    return np.concatenate([np.ravel(params[k]) for k in params])


def splitter(*likes):
    """A function theta -> (params shaped like likes[0], like likes[1], ...) of views into
    consecutive pieces of the flat theta: unflatten(copy=False) with the offsets computed once,
    for loops that split the same vector thousands of times."""
    plan, start = [], 0
    for like in likes:
        entries = []
        for k, v in like.items():
            entries.append((k, start, start + np.size(v), np.shape(v)))
            start += np.size(v)
        plan.append((getattr(like, "activation", None), entries))

    def split(theta):
        out = []
        for activation, entries in plan:
            params = {} if activation is None else MLPParams(activation=activation)
            for k, a, b, shape in entries:
                params[k] = theta[a:b].reshape(shape)
            out.append(params)
        return tuple(out)
    return split


def unflatten(theta, like, copy=True):
    """The inverse of flatten: a new dict shaped like `like` (same keys, order, shapes, class).

    copy=False returns views into theta instead of copies: cheaper, and safe as long as theta is
    never modified in place (rlref's optimizers always return a new vector)."""
    theta = np.asarray(theta, dtype=np.float64)
    total = sum(np.size(v) for v in like.values())
    if theta.ndim != 1 or theta.size != total:
        raise ValueError(f"theta must be a vector of {total} numbers to fill "
                         f"{ {k: np.shape(v) for k, v in like.items()} }, got shape {theta.shape}")
    out = MLPParams(activation=like.activation) if isinstance(like, MLPParams) else {}
    i = 0
    for k, v in like.items():
        n = np.size(v)
        out[k] = theta[i:i + n].reshape(np.shape(v))
        if copy:
            out[k] = out[k].copy()
        i += n
    return out
