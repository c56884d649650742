//! Optimisers over flat parameter tensors, with PyTorch's update rules so that learning rates
//! and weight decays carry over: SGD with momentum (`torch.optim.SGD`: `b = mu b + g`,
//! `p -= lr b`) and Adam (`torch.optim.Adam`, bias-corrected moments). Weight decay is L2: `g +=
//! wd p` before the update, as both PyTorch optimisers do.

use crate::error::{Result, RuntimeError};

/// Which update rule, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent with (heavy-ball) momentum; 0 is plain SGD.
    Sgd {
        /// The momentum factor.
        momentum: f64,
    },
    /// Adam with the usual `beta1 = 0.9`, `beta2 = 0.999`, `eps = 1e-8`.
    Adam,
}

/// The optimiser's state for a list of parameter tensors.
#[derive(Clone, Debug)]
pub struct OptState {
    rule: Optimizer,
    lr: f64,
    weight_decay: f64,
    step: u32,
    /// Momentum buffers (SGD) or first moments (Adam), one per parameter.
    m: Vec<Vec<f64>>,
    /// Second moments (Adam).
    v: Vec<Vec<f64>>,
}

impl OptState {
    /// A fresh state for parameters of the given sizes.
    pub fn new(rule: Optimizer, lr: f64, weight_decay: f64, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| vec![0.0; n]).collect();
        OptState { rule, lr, weight_decay, step: 0, m: zeros(), v: zeros() }
    }

    /// Applies one update to `params` (in the order of `sizes`) from `grads`.
    pub fn update(&mut self, params: &mut [&mut [f64]], grads: &[&[f64]]) -> Result<()> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(RuntimeError::Internal(format!(
                "optimiser made for {} parameters, given {} and {} gradients",
                self.m.len(),
                params.len(),
                grads.len()
            )));
        }
        self.step += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            if p.len() != g.len() || p.len() != self.m[i].len() {
                return Err(RuntimeError::Internal(format!("parameter {i}: sizes differ")));
            }
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for j in 0..p.len() {
                let grad = g[j] + self.weight_decay * p[j];
                match self.rule {
                    Optimizer::Sgd { momentum } => {
                        m[j] = if self.step == 1 { grad } else { momentum * m[j] + grad };
                        p[j] -= self.lr * m[j];
                    }
                    Optimizer::Adam => {
                        m[j] = b1 * m[j] + (1.0 - b1) * grad;
                        v[j] = b2 * v[j] + (1.0 - b2) * grad * grad;
                        p[j] -= self.lr * (m[j] / c1) / ((v[j] / c2).sqrt() + eps);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_momentum_by_hand() {
        // p = 1, g = 2 then 2; lr 0.1, momentum 0.5, wd 0: b1 = 2, p = 0.8; b2 = 0.5*2 + 2 = 3,
        // p = 0.8 - 0.3 = 0.5.
        let mut s = OptState::new(Optimizer::Sgd { momentum: 0.5 }, 0.1, 0.0, &[1]);
        let mut p = vec![1.0];
        for _ in 0..2 {
            s.update(&mut [&mut p], &[&[2.0]]).unwrap();
        }
        assert!((p[0] - 0.5).abs() < 1e-15, "{p:?}");
    }

    #[test]
    fn adam_first_step_is_lr_times_sign_and_decay_adds_to_the_gradient() {
        // Bias correction makes the first Adam step lr * g / (|g| + eps).
        let mut s = OptState::new(Optimizer::Adam, 0.01, 0.0, &[2]);
        let mut p = vec![1.0, -1.0];
        s.update(&mut [&mut p], &[&[3.0, -0.5]]).unwrap();
        assert!((p[0] - 0.99).abs() < 1e-9 && (p[1] + 0.99).abs() < 1e-9, "{p:?}");
        // With weight decay 1 and a zero gradient, the effective gradient is p itself.
        let mut s = OptState::new(Optimizer::Sgd { momentum: 0.0 }, 0.5, 1.0, &[1]);
        let mut p = vec![2.0];
        s.update(&mut [&mut p], &[&[0.0]]).unwrap();
        assert!((p[0] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let mut s = OptState::new(Optimizer::Adam, 0.01, 0.0, &[2]);
        let mut p = vec![1.0];
        assert!(s.update(&mut [&mut p], &[&[1.0]]).is_err());
    }
}
