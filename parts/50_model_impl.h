/* IMPLEMENTATION: model forward/backward, losses, optimizer (owner: core issue) */
