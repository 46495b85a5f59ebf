#!/usr/bin/env python3
"""Writes N plausible knowledge-base articles for the benchmark (bench-kb.sh): what a large
deployment's operators add over the years (rooms, courses, campus networks, runbooks),
in the product's own vocabulary so that they compete with the starter articles for the same
words. Deterministic: the same N and SEED give the same files.

    kb-filler.py N DIR [SEED]      writes DIR/en/filler-NNNN.md
"""

import os
import random
import sys

BUILDINGS = ["North Hall", "Science Park", "Library Annex", "Engineering Block", "Old Mill",
             "Harbour Campus", "Medical School", "Arts Centre", "Student Union", "West Wing"]
COURSES = ["Linear Algebra", "Organic Chemistry", "Modern History", "Signals and Systems",
           "Microeconomics", "Data Structures", "Cell Biology", "Philosophy of Mind",
           "Statistics II", "Thermodynamics", "Spanish B1", "Academic Writing"]
NETWORKS = ["eduroam", "CampusGuest", "Residence-Net", "LabNet", "Library-WiFi", "StaffNet"]
DEVICES = ["ceiling microphone", "document camera", "room camera", "speakerphone",
           "lectern PC", "wireless headset", "USB webcam", "HDMI capture box"]
PEOPLE = ["Dr. Amsel", "Prof. Baker", "Ms. Chen", "Mr. Duarte", "Dr. Eriksen", "Prof. Farouk",
          "Ms. Gupta", "Dr. Horvat"]
TOPICS = ["camera", "microphone", "network", "relay", "browser", "link", "chat", "password",
          "firewall", "meeting", "recording", "schedule", "headset", "sound", "video"]

SENTENCES = [
    "Open the meeting link from the course page a few minutes before {time}.",
    "The {device} in room {room} is switched on from the lectern panel.",
    "If the {device} shows nothing, check that its cable is plugged into the lectern PC.",
    "Students on {net} sometimes see Connecting for a while; Relay only usually helps.",
    "{person} hosts the {course} office hours every {day} at {time}.",
    "Ask the host for the code if the link in the e-mail does not open.",
    "Use headphones in the {building} study rooms: the walls are thin and echo carries.",
    "The {building} network allows web traffic only, so calls go through the relay on port 443.",
    "Allow the camera and microphone when the browser asks, then reload the page.",
    "The {course} tutorials use one meeting per group; each group gets its own link.",
    "Chat messages stay with the meeting, so post the reading list there.",
    "Turn your camera off when the video freezes on the {net} network.",
    "Room {room} has a {device} that the browser lists as the default device.",
    "The help desk in {building} lends {device}s for the term.",
    "The course page lists the meeting times for the whole term.",
    "Passwords for the lab computers are not the same as your meeting account's.",
    "Rotate the relay secret for {building} every term, as the runbook says.",
    "The relay node in {building} is drained before the Sunday maintenance window.",
    "Alerts for the {building} node go to the operations channel.",
    "Hosts of {course} can remove participants who were not invited.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
TIMES = ["9:00", "10:30", "13:00", "14:15", "16:00", "18:30"]


def article(i, rnd):
    kind = rnd.choice(["room", "course", "network", "device", "runbook"])
    b, c, n, d, p = (rnd.choice(x) for x in (BUILDINGS, COURSES, NETWORKS, DEVICES, PEOPLE))
    room = "%s%d" % (rnd.choice("ABCDEFG"), rnd.randrange(1, 400))
    title = {
        "room": "Room %s in %s: the %s" % (room, b, d),
        "course": "%s: meetings and office hours with %s" % (c, p),
        "network": "Calls on %s in %s" % (n, b),
        "device": "Using the %s in %s" % (d, b),
        "runbook": "Runbook: the relay node in %s" % b,
    }[kind]
    audience = {"room": "host", "course": "student", "network": "student", "device": "host",
                "runbook": "operator"}[kind]
    tags = sorted(set(rnd.sample(TOPICS, 3) + [b.lower()]))
    fill = {"building": b, "course": c, "net": n, "device": d, "person": p, "room": room,
            "day": rnd.choice(DAYS), "time": rnd.choice(TIMES)}
    parts = [" ".join(rnd.choice(SENTENCES).format(**fill) for _ in range(2))]
    for _ in range(rnd.randrange(2, 6)):
        head = rnd.choice(["Before the meeting", "If the %s fails" % rnd.choice(TOPICS),
                           "Who to ask", "On %s" % n, "In room %s" % room, "For hosts",
                           "Good to know", "Checklist", "After the meeting"])
        sents = [rnd.choice(SENTENCES).format(**fill) for _ in range(rnd.randrange(3, 9))]
        parts.append("## %s\n\n%s" % (head, " ".join(sents)))
    slug = "filler-%04d" % i
    body = "\n\n".join(parts) + "\n"
    return slug, ("---\ntitle: %s\nslug: %s\nlanguage: en\naudience: %s\ntags: %s\n---\n%s"
                  % (title, slug, audience, ", ".join(tags), body))


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    n, out = int(argv[1]), argv[2]
    rnd = random.Random(int(argv[3]) if len(argv) > 3 else 18)
    os.makedirs(os.path.join(out, "en"), exist_ok=True)
    for i in range(1, n + 1):
        slug, text = article(i, rnd)
        with open(os.path.join(out, "en", slug + ".md"), "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
