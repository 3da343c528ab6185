"""`make chaos`: the fault suite (README: "Guarantees, and how they are tested")."""
