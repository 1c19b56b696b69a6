from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def profile_list(request):  # replaced by the profiles work
    return HttpResponse("TODO")


@login_required
def profile_edit(request):  # replaced by the profiles work
    return HttpResponse("TODO")
