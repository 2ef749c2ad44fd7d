# Source this after `pip install -r requirements-gpu.txt`: it adds the lib folders of the
# nvidia-*-cu11 wheels to LD_LIBRARY_PATH so that mxnet-cu112 finds them.
_fbnet_nv=$(python -c 'import os, nvidia; print(os.path.dirname(nvidia.__path__[0]) + "/nvidia")' 2>/dev/null)
if [ -n "$_fbnet_nv" ]; then
  for _d in "$_fbnet_nv"/*/lib; do LD_LIBRARY_PATH="$_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
  export LD_LIBRARY_PATH
else
  echo "gpu_env.sh: the nvidia-*-cu11 wheels are not installed in this Python" >&2
fi
unset _fbnet_nv _d
