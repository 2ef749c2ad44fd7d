"""What a network is: search spaces and presets, candidate blocks, heads, architecture JSON, the one graph builder, MAC counts.

Everything here is a pure description or a pure symbol builder; nothing trains, reads data
or parses a command line. The one registry of search spaces is :data:`SPACES`
(:mod:`.spaces`); each entry names the module of its blocks, which must provide
(:func:`~fbnet_symbol.space.spaces.block_module` checks it):

* ``OPS``: ``{op name: fn(data, layer, prefix, bn_inside, **candidate params) -> Symbol}``,
  one per ``Candidate.op`` of the space (an identity candidate needs none);
* ``SCALABLE_OPS``: the ops whose ``fn`` accepts ``scale=`` (a mixture weight folded into
  the parameters of their last linear step; an empty set when none can);
* ``stem(data, layout)``, ``before_layer(x, layer, layout)``, ``tail(x, layout)``: the
  fixed parts around the searchable layers;
* ``tail_channels(layout)``: the width of the pooled features.

A new space is a :class:`~fbnet_symbol.space.spaces.SpaceDef` added to ``SPACES`` and a
block module meeting that contract; the supernet, child builder, latency table, sampler
and MAC counter read it from there.
"""
