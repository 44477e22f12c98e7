"""Routers: map a routing input to soft weights over adapter paths."""
from .modality_router import ModalityRouter
from .routing import RoutingContext

__all__ = ['ModalityRouter', 'RoutingContext']
