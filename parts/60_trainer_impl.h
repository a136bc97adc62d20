/* IMPLEMENTATION: trainer, distillation losses, checkpoints (owner: trainer issue) */
