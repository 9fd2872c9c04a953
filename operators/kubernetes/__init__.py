"""The kubernetes launcher: pool profiles, pure manifest builders, and the job lifecycle."""
