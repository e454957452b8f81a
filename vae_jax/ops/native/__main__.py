import sys

from vae_jax.ops.native import main

sys.exit(main())
