"""A view that makes three ORM queries: one row by key, a filtered count, an ordered slice."""

import counter
from django.http import JsonResponse
from django.urls import path

from djangoapp.models import Item


def item(request, uid):
    counter.handled += 1
    found = Item.objects.get(pk=uid % 100 + 1)
    dearer = Item.objects.filter(price__gt=found.price).count()
    cheapest = list(Item.objects.order_by("price").values_list("name", flat=True)[:5])
    return JsonResponse({"name": found.name, "dearer": dearer, "cheapest": cheapest})


urlpatterns = [path("items/<int:uid>", item)]
