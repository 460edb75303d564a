"""kill_at.py OUT_DIR MODE DELAY CMD...: start CMD, wait until OUT_DIR holds its first
whole checkpoint (the training state, last/ and the best model: tokenizer.bin is the
last file it writes), then SIGKILL it:
  MODE random: DELAY seconds later;
  MODE write:  as soon as a checkpoint file is being written (a *.tmp file appears
               in OUT_DIR or OUT_DIR/last), plus DELAY seconds.
Prints one line, "killed after S s; during a write: yes|no", and exits 0; exits 3
if CMD ended before it could be killed, 4 if no checkpoint ever appeared.
"""
import glob
import os
import signal
import subprocess
import sys
import time


def writing(out_dir):
    return glob.glob(os.path.join(out_dir, "*.tmp")) + glob.glob(os.path.join(out_dir, "last", "*.tmp"))


def main(out_dir, mode, delay, cmd):
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_checkpoint = os.path.join(out_dir, "tokenizer.bin")
    while not os.path.exists(first_checkpoint):
        if proc.poll() is not None:
            return 4
        time.sleep(0.0005)
    if mode == "write":
        while not writing(out_dir):
            if proc.poll() is not None:
                return 3
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        pass
    if proc.poll() is not None:
        return 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    print(f"killed after {time.monotonic() - t0:.3f} s; during a write: {'yes' if writing(out_dir) else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
