/* IMPLEMENTATION: JSON (owner: data issue) */
