"""Parity of the two twins: verify (eval-mode outputs, gated), per-layer comparison, training
(loss, gradients, running statistics, optimizer steps), and the inputs fed to both."""
