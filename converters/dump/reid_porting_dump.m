function reid_porting_dump(model, outFile, varargin)
%REID_PORTING_DUMP  Every var of a MatConvNet net for one input, for `reid-porting compare`.
%   REID_PORTING_DUMP(MODEL, OUTFILE) loads MODEL (a .mat path holding `net`, a SimpleNN
%   struct, a saved DagNN struct or a dagnn.DagNN object), runs it in test mode on a seeded
%   input and saves every var to OUTFILE (MAT v7), one variable per MatConvNet var name, in
%   MatConvNet's own H x W x C x N layout: SimpleNN vars are named after the layer that
%   writes them (`input` for the input), DagNN vars keep their names. The input is saved too,
%   so `reid-porting compare model.pth OUTFILE` runs the converted net on the same values.
%
%   Options (name, value pairs):
%     'input'   H x W x 3 x N single: the image input (default: seeded, see 'seed')
%     'size'    [H W] of the seeded input (default: net.meta.normalization.imageSize(1:2))
%     'batch'   N of the seeded input (default 2)
%     'seed'    seed of the seeded input, uniform in [-128, 128) (default 0; MATLAB and Octave
%               generators differ, which is why the input itself is saved)
%     'inputs'  {name, value, ...}: other DagNN inputs (labels; default all ones = class 1)
%
%   Works under MATLAB and GNU Octave (>= 7) with MatConvNet beta23 on the path.

opts.input = [];
opts.size = [];
opts.batch = 2;
opts.seed = 0;
opts.inputs = {};
for i = 1:2:numel(varargin)
  if ~isfield(opts, varargin{i})
    error('reid_porting_dump:option', 'unknown option ''%s''', varargin{i});
  end
  opts.(varargin{i}) = varargin{i + 1};
end

net = model;
if ischar(net)
  loaded = load(net);
  if isfield(loaded, 'net')
    net = loaded.net;               % net-epoch-N.mat of cnn_train(_dag)
  elseif isfield(loaded, 'layers')
    net = loaded;                   % saved with -struct: layers, meta (and vars, params)
  else
    error('reid_porting_dump:model', '%s holds neither ''net'' nor ''layers''', model);
  end
end
dag = isa(net, 'dagnn.DagNN') || (isstruct(net) && isfield(net, 'vars') && isfield(net, 'params'));
if dag && isstruct(net)
  net = dagnn.DagNN.loadobj(net);
elseif ~dag
  net = vl_simplenn_tidy(net);
end

x = opts.input;
if isempty(x)
  sz = opts.size;
  if isempty(sz)
    sz = net.meta.normalization.imageSize(1:2);
  end
  if exist('rng', 'file') || exist('rng', 'builtin')
    rng(opts.seed, 'twister');
  else
    rand('twister', opts.seed);
  end
  x = single(rand(sz(1), sz(2), 3, opts.batch) * 256 - 128);
end
n = size(x, 4);

out = struct();
if dag
  net.mode = 'test';
  net.conserveMemory = false;
  for i = 1:numel(net.vars)
    net.vars(i).precious = true;
  end
  labels = {};
  for l = 1:numel(net.layers)
    if isa(net.layers(l).block, 'dagnn.Loss') && numel(net.layers(l).inputs) > 1
      labels{end + 1} = net.layers(l).inputs{2};
    end
  end
  given = opts.inputs;
  inputs = {};
  names = net.getInputs();
  for i = 1:numel(names)
    k = find(strcmp(given(1:2:end), names{i}), 1);
    if ~isempty(k)
      inputs(end + 1:end + 2) = {names{i}, given{2 * k}};
    elseif any(strcmp(labels, names{i}))
      inputs(end + 1:end + 2) = {names{i}, ones(1, n, 'single')};
    else
      inputs(end + 1:end + 2) = {names{i}, x};
    end
  end
  net.eval(inputs);
  for i = 1:numel(net.vars)
    out = put(out, net.vars(i).name, net.vars(i).value);
  end
  for i = 1:2:numel(inputs)
    out = put(out, inputs{i}, inputs{i + 1});
  end
else
  for l = 1:numel(net.layers)
    if any(strcmp(net.layers{l}.type, {'softmaxloss', 'loss'}))
      net.layers{l}.class = ones(1, n, 'single');
    end
  end
  res = vl_simplenn(net, x, [], [], 'mode', 'test', 'conserveMemory', false);
  out = put(out, 'input', x);
  for l = 1:numel(net.layers)
    out = put(out, net.layers{l}.name, res(l + 1).x);
  end
end
if exist('OCTAVE_VERSION', 'builtin')
  save('-v7', outFile, '-struct', 'out');
else
  save(outFile, '-struct', 'out', '-v7');
end
end

function s = put(s, name, value)
% A var as a MAT variable of the same name; a name MATLAB cannot store is an error.
if ~isvarname(name)
  error('reid_porting_dump:name', 'var ''%s'' is not a valid MATLAB variable name', name);
end
s.(name) = gather(value);
end
