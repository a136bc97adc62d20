/* PUBLIC API: trainer, distillation losses, checkpoints (owner: trainer issue) */
