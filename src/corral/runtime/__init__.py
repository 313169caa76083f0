"""Running slugs: process environments, the process manager, output printing."""
