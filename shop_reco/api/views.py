"""DRF endpoints."""

from rest_framework.views import APIView


class BeaconView(APIView):
    """Batch event intake for the JS beacon (being written in the tracking issue)."""
