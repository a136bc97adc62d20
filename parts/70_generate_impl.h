/* IMPLEMENTATION: generation and evaluation (owner: generation issue) */
