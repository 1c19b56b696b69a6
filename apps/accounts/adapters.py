from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    """Hook for sign-up policy. Profiles are created by a signal on the user, not here, so users
    made by createsuperuser or the admin get one too."""
