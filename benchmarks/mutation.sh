#!/usr/bin/env bash
# Mutation testing (mutmut 3.8.1) of the modules where a silent error corrupts data, each against the fast tests that
# cover it. Not run in CI (minutes per module on 2 cores); results and scores are recorded in docs/TESTING.md.
#
#   pip install mutmut==3.8.1          # once, into the project's venv
#   benchmarks/mutation.sh             # every module below, one at a time
#   benchmarks/mutation.sh atomic gaze # some of them
#   MUTANTS='neural_renderer.storage.h5io.x_write_stage*' benchmarks/mutation.sh storage  # some functions only
#   MUTATION_TESTS=tests/test_x.py::test_y benchmarks/mutation.sh audio_render           # other tests than below
#
# Each module runs in its own scratch copy of the working tree ($MUTATION_DIR/<name>, default /tmp/portrait-mutation),
# so nothing is written into the checkout; the summary is $MUTATION_DIR/<name>/summary.txt and the survivors' diffs
# are listed by `cd $MUTATION_DIR/<name> && mutmut results` / `mutmut show <mutant>`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${MUTATION_DIR:-/tmp/portrait-mutation}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"  # the venv with mutmut (a worktree: PYTHON=../main/.venv/bin/python)
DATA="${PORTRAIT_TEST_DATA:-$(cd "$ROOT/.." && pwd)/shared}"
CHILDREN="${MUTATION_CHILDREN:-1}"
read -r -a PATTERNS <<<"${MUTANTS:-}"  # mutant names (fnmatch: module.x_function*), space-separated; empty: all

# name | files to mutate (globs, comma-separated) | the fast tests that cover them (pytest node ids, comma-separated)
MODULES=(
  "atomic|neural_renderer/atomic.py|tests/test_storage.py"
  "metrics_stage|neural_renderer/stages/metrics.py|tests/test_metrics_frames.py::test_metrics_stage_pairs_each_render_with_its_own_real_frame,tests/test_metrics_frames.py::test_metrics_stage_refuses_inputs_that_do_not_belong_together,tests/test_metrics_frames.py::test_metrics_stage_scores_a_reenactment_against_its_driving_frames_motion,tests/test_outputs.py,tests/test_metrics_summary.py::test_summary_table_lists_every_output_with_reasons_for_missing_values"
  "gaze|neural_renderer/fitting/gaze.py|tests/test_gaze.py"
  "crop|neural_renderer/crop/*|tests/test_crop.py"
  "storage|neural_renderer/storage/*|tests/test_storage.py,tests/test_motion.py,tests/test_storage_reads.py"
  "video|neural_renderer/video/*|tests/test_video.py"
  "renderer_render|neural_renderer/renderer/render.py|tests/test_model_files.py,tests/test_renderer.py::test_renderer_outputs_what_its_saved_generator_computes,tests/test_renderer.py::test_render_test_frames_writes_the_rendered_frames_beside_their_real_ones"
  "audio_render|neural_renderer/audio/render.py|tests/test_model_files.py,tests/test_audio.py::test_audio_driver_is_the_saved_nets_about_the_training_pose,tests/test_audio.py::test_render_audio_renders_the_audio_models_motion_with_the_target_renderer"
)

run_module() {
  local name="$1" mutate="$2" tests="$3" dir="$OUT/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$dir" 2>/dev/null || true)
  {
    echo "[mutmut]"
    echo "source_paths = neural_renderer"
    echo "only_mutate ="
    tr ',' '\n' <<<"$mutate" | sed 's/^/    /'
    echo "pytest_add_cli_args_test_selection ="
    tr ',' '\n' <<<"$tests" | sed 's/^/    /'
    echo "pytest_add_cli_args ="
    echo "    -p"
    echo "    no:cacheprovider"
    echo "also_copy ="  # everything else the tests read (README, rules, config, ...)
    (cd "$dir" && ls -A | grep -vx -e neural_renderer -e tests -e setup.cfg | sed 's/^/    /')
    echo "process_isolation = forkserver"
    echo "use_git_change_detection = false"
  } >"$dir/setup.cfg"
  (
    cd "$dir"
    export PORTRAIT_TEST_DATA="$DATA" PYTHONPATH="$dir/mutants"  # the mutated package, not an installed one
    mkdir -p mutants  # before Python starts: a sys.path entry that does not exist yet is cached as absent
    nice -n 10 "$PYTHON" -m mutmut run --max-children "$CHILDREN" ${PATTERNS[@]+"${PATTERNS[@]}"} >run.log 2>&1 || true
    "$PYTHON" -m mutmut results --all true >results.txt 2>&1 || true
    tr '\r' '\n' <run.log | grep -v '^ *$' | tail -n 2 >summary.txt
    for verdict in killed survived suspicious timeout "no tests" "not checked" segfault; do
      printf '%s: %s\n' "$verdict" "$(grep -c ": $verdict\$" results.txt || true)" >>summary.txt
    done
    grep -v ': killed$' results.txt >>summary.txt || true
  )
  echo "== $name"; cat "$dir/summary.txt"
}

selected=("$@")
for entry in "${MODULES[@]}"; do
  IFS='|' read -r name mutate tests <<<"$entry"
  tests="${MUTATION_TESTS:-$tests}"
  if [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $name "* ]]; then
    run_module "$name" "$mutate" "$tests"
  fi
done
