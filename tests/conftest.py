"""Settings every test shares."""

from hypothesis import settings

# A property test's examples have no deadline: on CI's two shared cores a stall of the
# machine (another test's burst, a page fault) is not a slow example, and Hypothesis's
# default 200 ms deadline turned it into a failure. Loaded before any test module, so
# each test's own @settings starts from it.
settings.register_profile("sluice", deadline=None)
settings.load_profile("sluice")
