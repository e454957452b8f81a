import sys

from vae_jax.native import main

sys.exit(main())
