"""Tests of gear.apis."""
