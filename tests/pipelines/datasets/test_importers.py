"""Importers against fixture files written in each dataset's exact published format."""

import json
import logging
import re
from pathlib import Path

import pytest

from pipelines.datasets.importers import (
    IMPORTERS,
    import_charades,
    import_dataset,
    import_hmdb51,
    import_kinetics,
    import_msrvtt,
    import_msrvtt_qa,
    import_msvd,
    import_msvd_qa,
    import_ucf101,
)
from schemas import MANIFEST_SCHEMA, validate_manifest
from schemas import columns as c


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def crlf(*lines: str) -> str:
    """UCF101's lists are Windows text files."""
    return "".join(f"{line}\r\n" for line in lines)


def rows(table, *names):
    assert validate_manifest(table) == []
    assert table.schema.equals(MANIFEST_SCHEMA)
    return table.select([c.VIDEO_ID, *names]).to_pylist()


def fails(function, *args, match: str, **kwargs):
    with pytest.raises(ValueError, match=f"^{re.escape(match)}$"):
        function(*args, **kwargs)


# ---------------------------------------------------------------- UCF101


@pytest.fixture
def ucf(tmp_path) -> Path:
    root = tmp_path / "ucfTrainTestlist"
    write(root / "classInd.txt", crlf("1 ApplyEyeMakeup", "2 ApplyLipstick", "37 HandstandPushups"))
    write(
        root / "trainlist01.txt",
        crlf(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c02.avi 1",
            "ApplyLipstick/v_ApplyLipstick_g24_c01.avi 2",
            "HandstandPushups/v_HandStandPushups_g08_c01.avi 37",
        ),
    )
    write(
        root / "testlist01.txt",
        crlf(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
            "HandstandPushups/v_HandStandPushups_g07_c04.avi",
        ),
    )
    write(root / "trainlist02.txt", crlf("ApplyLipstick/v_ApplyLipstick_g01_c01.avi 2"))
    write(root / "testlist02.txt", crlf("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"))
    return root


def test_ucf101_round_trip(ucf):
    table = import_ucf101(ucf, video_root="data/UCF-101")
    assert rows(table, c.URI, c.SPLIT, c.LABEL) == [
        {
            "video_id": "v_ApplyEyeMakeup_g08_c01",
            "uri": "data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
            "split": "train",
            "label": "ApplyEyeMakeup",
        },
        {
            "video_id": "v_ApplyEyeMakeup_g25_c02",
            "uri": "data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c02.avi",
            "split": "train",
            "label": "ApplyEyeMakeup",
        },
        {
            "video_id": "v_ApplyLipstick_g24_c01",
            "uri": "data/UCF-101/ApplyLipstick/v_ApplyLipstick_g24_c01.avi",
            "split": "train",
            "label": "ApplyLipstick",
        },
        # The folder's case, not the file's: the archive has HandstandPushups/v_HandStand...
        {
            "video_id": "v_HandStandPushups_g08_c01",
            "uri": "data/UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi",
            "split": "train",
            "label": "HandstandPushups",
        },
        {
            "video_id": "v_ApplyEyeMakeup_g01_c01",
            "uri": "data/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
            "split": "test",
            "label": "ApplyEyeMakeup",
        },
        {
            "video_id": "v_HandStandPushups_g07_c04",
            "uri": "data/UCF-101/HandstandPushups/v_HandStandPushups_g07_c04.avi",
            "split": "test",
            "label": "HandstandPushups",
        },
    ]
    assert table.column(c.START_S).null_count == table.num_rows


def test_ucf101_val_is_carved_from_whole_groups(ucf):
    table = import_ucf101(ucf, val_groups=2)
    splits = dict(
        zip(table.column(c.VIDEO_ID).to_pylist(), table.column(c.SPLIT).to_pylist(), strict=True)
    )
    # Training groups are 8, 24 and 25: the two highest go to val, in every class.
    assert splits == {
        "v_ApplyEyeMakeup_g08_c01": "train",
        "v_ApplyEyeMakeup_g25_c02": "val",
        "v_ApplyLipstick_g24_c01": "val",
        "v_HandStandPushups_g08_c01": "train",
        "v_ApplyEyeMakeup_g01_c01": "test",
        "v_HandStandPushups_g07_c04": "test",
    }
    fails(
        import_ucf101,
        ucf,
        val_groups=3,
        match="val_groups (3) must be less than the 3 training groups of split 1",
    )


def test_ucf101_split_number_picks_the_lists(ucf):
    table = import_ucf101(ucf, split_number=2)
    assert rows(table, c.SPLIT) == [
        {"video_id": "v_ApplyLipstick_g01_c01", "split": "train"},
        {"video_id": "v_ApplyEyeMakeup_g08_c01", "split": "test"},
    ]
    fails(import_ucf101, ucf, split_number=4, match="split_number (4) must be 1, 2 or 3")
    fails(import_ucf101, ucf, split_number=3, match="trainlist03.txt not found in " + str(ucf))


@pytest.mark.parametrize(
    ("file_name", "line", "expected"),
    [
        (
            "trainlist01.txt",
            "ApplyLipstick/v_ApplyLipstick_g24_c01.avi 1",
            "trainlist01.txt line 2: class index '1' does not match classInd.txt's 2 "
            "for 'ApplyLipstick'",
        ),
        (
            "trainlist01.txt",
            "../v_ApplyEyeMakeup_g01_c01.avi 1",
            "trainlist01.txt line 2: unsafe class folder: id '..' contains '..'",
        ),
        (
            "testlist01.txt",
            "Archery/v_Archery_g01_c01.avi",
            "testlist01.txt line 2: class 'Archery' is not in classInd.txt",
        ),
        (
            "testlist01.txt",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1",
            "testlist01.txt line 2: expected '<Class>/<file>.avi', "
            "got 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1'",
        ),
        (
            "testlist01.txt",
            "ApplyEyeMakeup/clip.avi",
            "testlist01.txt line 2: file name 'clip.avi' is not v_<Class>_gNN_cNN.avi",
        ),
        (
            "classInd.txt",
            "ApplyEyeMakeup 1",
            "classInd.txt line 2: expected '<index> <ClassName>', got 'ApplyEyeMakeup 1'",
        ),
    ],
)
def test_ucf101_bad_lines_are_named(ucf, file_name, line, expected):
    lines = (ucf / file_name).read_text().splitlines()
    write(ucf / file_name, crlf(lines[0], line, *lines[1:]))
    fails(import_ucf101, ucf, match=expected)


def test_ucf101_clip_in_train_and_test_is_a_duplicate(ucf):
    write(ucf / "testlist01.txt", crlf("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"))
    fails(
        import_ucf101,
        ucf,
        match="testlist01.txt line 1: duplicate video id 'v_ApplyEyeMakeup_g08_c01' "
        "(first at trainlist01.txt line 1)",
    )


def test_non_utf8_bytes_name_their_line(ucf):
    (ucf / "testlist01.txt").write_bytes(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n\xff\r\n")
    fails(import_ucf101, ucf, match="testlist01.txt line 2: not UTF-8 text")


# ---------------------------------------------------------------- HMDB51


@pytest.fixture
def hmdb(tmp_path) -> Path:
    root = tmp_path / "testTrainMulti_7030_splits"
    # The published files end every line with a space.
    write(
        root / "brush_hair_test_split1.txt",
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
        "Aussie_Brush_Hair_brush_hair_h_cm_np1_le_goo_0.avi 2 \n"
        "Blonde_being_brushed_brush_hair_f_cm_np2_ri_med_0.avi 0 \n",
    )
    write(
        root / "clap_test_split1.txt",
        "#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 2 \nApplauding_Abby_clap_u_nm_np1_fr_med_0.avi 1 \n",
    )
    write(root / "brush_hair_test_split2.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")
    return root


def test_hmdb51_round_trip_excludes_unused_clips(hmdb):
    table = import_hmdb51(hmdb, video_root="hmdb51_org")
    assert rows(table, c.URI, c.SPLIT, c.LABEL) == [
        {
            "video_id": "April_09_brush_hair_u_nm_np1_ba_goo_0",
            "uri": "hmdb51_org/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
            "split": "train",
            "label": "brush_hair",
        },
        {
            "video_id": "Aussie_Brush_Hair_brush_hair_h_cm_np1_le_goo_0",
            "uri": "hmdb51_org/brush_hair/Aussie_Brush_Hair_brush_hair_h_cm_np1_le_goo_0.avi",
            "split": "test",
            "label": "brush_hair",
        },
        {
            "video_id": "#20_Rhythm_clap_u_nm_np1_fr_goo_0",
            "uri": "hmdb51_org/clap/#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi",
            "split": "test",
            "label": "clap",
        },
        {
            "video_id": "Applauding_Abby_clap_u_nm_np1_fr_med_0",
            "uri": "hmdb51_org/clap/Applauding_Abby_clap_u_nm_np1_fr_med_0.avi",
            "split": "train",
            "label": "clap",
        },
    ]
    assert rows(import_hmdb51(hmdb, split_number=2), c.SPLIT) == [
        {"video_id": "April_09_brush_hair_u_nm_np1_ba_goo_0", "split": "test"}
    ]


def test_hmdb51_errors(hmdb):
    write(hmdb / "clap_test_split1.txt", "a_clap_0.avi 1 \na_clap_1.avi 3 \n")
    fails(import_hmdb51, hmdb, match="clap_test_split1.txt line 2: split id '3' must be 0, 1 or 2")
    write(hmdb / "clap_test_split1.txt", "a_clap_0.avi\n")
    fails(
        import_hmdb51,
        hmdb,
        match="clap_test_split1.txt line 1: expected '<video>.avi <0|1|2>', got 'a_clap_0.avi'",
    )
    fails(
        import_hmdb51,
        hmdb,
        split_number=3,
        match="no <action>_test_split3.txt files in testTrainMulti_7030_splits",
    )


# ---------------------------------------------------------------- Kinetics


@pytest.fixture
def kinetics(tmp_path) -> Path:
    root = tmp_path / "annotations"
    write(
        root / "train.csv",
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,-3B32lodo2M,59,69,train,0\n"
        '"air drumming",--nQbRBEz2s,104,114,train,0\n',
    )
    write(
        root / "validate.csv",
        "label,youtube_id,time_start,time_end,split\ntestifying,---QUuC4vJs,84,94,validate\n",
    )
    write(root / "test.csv", "youtube_id,time_start,time_end,split\n--07WQ2iBlw,1,11,test\n")
    return root


def test_kinetics_round_trip(kinetics):
    table = import_kinetics(kinetics, video_root="k400")
    assert rows(table, c.URI, c.SPLIT, c.LABEL, c.START_S, c.END_S) == [
        {
            "video_id": "-3B32lodo2M_000059_000069",
            "uri": "k400/train/-3B32lodo2M_000059_000069.mp4",
            "split": "train",
            "label": "abseiling",
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "--nQbRBEz2s_000104_000114",
            "uri": "k400/train/--nQbRBEz2s_000104_000114.mp4",
            "split": "train",
            "label": "air drumming",
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "---QUuC4vJs_000084_000094",
            "uri": "k400/val/---QUuC4vJs_000084_000094.mp4",
            "split": "val",
            "label": "testifying",
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "--07WQ2iBlw_000001_000011",
            "uri": "k400/test/--07WQ2iBlw_000001_000011.mp4",
            "split": "test",
            "label": None,
            "start_s": None,
            "end_s": None,
        },
    ]
    # One CSV on its own works too.
    assert import_kinetics(kinetics / "test.csv").num_rows == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("abseiling,x1,5,x,train", "train.csv line 3: time_end 'x' must be a whole number"),
        ("abseiling,x1,5,5,train", "train.csv line 3: end (5) must be after start (5)"),
        ("abseiling,x1,5,9,dev", "train.csv line 3: split 'dev' must be one of"),
        ("abseiling,x1,5,9", "train.csv line 3: expected 5 fields like the header"),
        ("abseiling,a/b,5,9,train", "train.csv line 3: unsafe youtube_id: id 'a/b' contains"),
    ],
)
def test_kinetics_bad_rows_are_named(tmp_path, line, expected):
    header_and_good = "label,youtube_id,time_start,time_end,split\nabseiling,x0,1,11,train\n"
    path = write(tmp_path / "train.csv", header_and_good + line + "\n")
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}"):
        import_kinetics(path)


def test_kinetics_header_must_have_the_columns(tmp_path):
    path = write(tmp_path / "train.csv", "label,ytid,start,end\nabseiling,x,1,2\n")
    fails(
        import_kinetics,
        path,
        match="train.csv line 1: header lacks column youtube_id, time_start, time_end, split",
    )


# ---------------------------------------------------------------- Charades


CHARADES_HEADER = (
    "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
)


@pytest.fixture
def charades(tmp_path) -> Path:
    root = tmp_path / "Charades"
    write(
        root / "Charades_v1_train.csv",
        CHARADES_HEADER + "46GP8,HR43,Kitchen,6,7,Yes,"
        '"A person cooks food on a stove, then looks out a window.",food;stove;window,'
        '"A person is cooking.;The person  looks out of the window.",'
        "c002 0.00 12.60;c000 11.90 21.20;c002 14.00 20.00,24.83\n"
        "N11GT,0KZ7,Stairs,6,7,Yes,A person walks up the stairs.,stairs,,,17.29\n",
    )
    write(
        root / "Charades_v1_test.csv",
        CHARADES_HEADER
        + 'YSKX3,8TLO,Bedroom,,,No,A person holds clothes.,clothes,"Someone holds a shirt.",'
        "c000 1.50 9.00,31.00\n",
    )
    write(
        root / "Charades_v1_classes.txt",
        "c000 Holding some clothes\nc001 Putting clothes somewhere\n"
        "c002 Taking some clothes from somewhere\n",
    )
    return root


def test_charades_round_trip(charades):
    table = import_charades(charades, video_root="Charades_v1_480")
    assert rows(table, c.URI, c.SPLIT, c.LABEL, c.LABELS, c.CAPTIONS) == [
        {
            "video_id": "46GP8",
            "uri": "Charades_v1_480/46GP8.mp4",
            "split": "train",
            "label": None,
            "labels": ["Holding some clothes", "Taking some clothes from somewhere"],
            "captions": ["A person is cooking.", "The person looks out of the window."],
        },
        {
            "video_id": "N11GT",
            "uri": "Charades_v1_480/N11GT.mp4",
            "split": "train",
            "label": None,
            "labels": [],
            "captions": None,
        },
        {
            "video_id": "YSKX3",
            "uri": "Charades_v1_480/YSKX3.mp4",
            "split": "test",
            "label": None,
            "labels": ["Holding some clothes"],
            "captions": ["Someone holds a shirt."],
        },
    ]


def test_charades_without_classes_file_uses_ids(charades, caplog):
    (charades / "Charades_v1_classes.txt").unlink()
    with caplog.at_level(logging.WARNING):
        table = import_charades(charades / "Charades_v1_test.csv")
    assert rows(table, c.LABELS) == [{"video_id": "YSKX3", "labels": ["c000"]}]
    assert "no Charades_v1_classes.txt beside Charades_v1_test.csv" in caplog.text


def test_charades_errors(charades):
    path = charades / "Charades_v1_train.csv"
    write(path, CHARADES_HEADER + "AAAAA,S,Kitchen,6,7,Yes,s,o,d,c001 1.0 2.0;c2 1 2,9.0\n")
    fails(
        import_charades,
        path,
        match="Charades_v1_train.csv line 2: action 'c2 1 2' is not 'c<NNN> <start> <end>'",
    )
    write(path, CHARADES_HEADER + 'AAAAA,S,Kitchen,6,7,Yes,"multi\nline",o,d,c009 1.0 2.0,9.0\n')
    fails(
        import_charades,
        path,
        match="Charades_v1_train.csv line 2: class c009 is not in Charades_v1_classes.txt",
    )
    other = write(charades / "charades.csv", CHARADES_HEADER)
    fails(
        import_charades,
        other,
        match="cannot tell the split of charades.csv; "
        "expected Charades_v1_train.csv or Charades_v1_test.csv",
    )


# ---------------------------------------------------------------- MSVD


MSVD_HEADER = (
    "# Microsoft Research Video Description Corpus, English descriptions\n"
    "# Format: <clip id> <description>\n"
    "#\n"
)


@pytest.fixture
def msvd(tmp_path) -> Path:
    root = tmp_path / "msvd"
    write(
        root / "AllVideoDescriptions.txt",
        MSVD_HEADER + "-4wsuPCjDBc_5_15 a squirrel is eating a peanut in it's shell\n"
        "-4wsuPCjDBc_5_15 A chipmunk is eating.\n"
        "-7KMZQEsJW4_205_208 a woman is slicing a tomato\n"
        "zv2RIbUsnSw_335_341 a man is playing a guitar\n",
    )
    write(
        root / "youtube_mapping.txt",
        "-4wsuPCjDBc_5_15 vid1\r\n-7KMZQEsJW4_205_208 vid1201\r\nzv2RIbUsnSw_335_341 vid1970\r\n",
    )
    return root


def test_msvd_round_trip(msvd):
    table = import_msvd(msvd / "AllVideoDescriptions.txt", video_root="YouTubeClips")
    assert rows(table, c.URI, c.SPLIT, c.CAPTIONS, c.START_S, c.END_S) == [
        {
            "video_id": "-4wsuPCjDBc_5_15",
            "uri": "YouTubeClips/-4wsuPCjDBc_5_15.avi",
            "split": "train",
            "captions": ["a squirrel is eating a peanut in it's shell", "A chipmunk is eating."],
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "-7KMZQEsJW4_205_208",
            "uri": "YouTubeClips/-7KMZQEsJW4_205_208.avi",
            "split": "val",
            "captions": ["a woman is slicing a tomato"],
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "zv2RIbUsnSw_335_341",
            "uri": "YouTubeClips/zv2RIbUsnSw_335_341.avi",
            "split": "test",
            "captions": ["a man is playing a guitar"],
            "start_s": None,
            "end_s": None,
        },
    ]


def test_msvd_without_mapping_puts_everything_in_train(msvd, caplog):
    (msvd / "youtube_mapping.txt").unlink()
    with caplog.at_level(logging.WARNING):
        table = import_msvd(msvd)
    assert table.column(c.SPLIT).to_pylist() == ["train", "train", "train"]
    assert "no youtube_mapping.txt beside AllVideoDescriptions.txt: all 3 clips" in caplog.text


def test_msvd_errors(msvd):
    descriptions = msvd / "AllVideoDescriptions.txt"
    write(descriptions, MSVD_HEADER + "-4wsuPCjDBc_5_15 ok\nbadclip a dog runs\n")
    fails(
        import_msvd,
        msvd,
        match="AllVideoDescriptions.txt line 5: clip 'badclip' is not '<youtube id>_<start>_<end>'",
    )
    write(descriptions, MSVD_HEADER + "-4wsuPCjDBc_5_15 ok\nabc_9_3 a dog runs\n")
    fails(
        import_msvd, msvd, match="AllVideoDescriptions.txt line 5: end (3) must be after start (9)"
    )
    # U+2028 is a line break to str.splitlines but not in the file: line numbers stay right.
    write(descriptions, MSVD_HEADER + "abc_1_3 a dog\u2028runs\nabc_3_1 a cat\n")
    fails(
        import_msvd, msvd, match="AllVideoDescriptions.txt line 5: end (1) must be after start (3)"
    )
    write(descriptions, MSVD_HEADER + "abc_1_3 a dog runs\n")
    fails(
        import_msvd,
        msvd,
        match="AllVideoDescriptions.txt line 4: clip 'abc_1_3' is not in youtube_mapping.txt",
    )
    write(msvd / "youtube_mapping.txt", "-4wsuPCjDBc_5_15 video1\n")
    fails(
        import_msvd,
        msvd,
        match="youtube_mapping.txt line 1: expected '<clip> vid<N>' with N >= 1, "
        "got '-4wsuPCjDBc_5_15 video1'",
    )


# ---------------------------------------------------------------- MSR-VTT


def msrvtt_video(number: int, split: str, category: int, start: float, end: float) -> dict:
    return {
        "category": category,
        "url": f"https://www.youtube.com/watch?v=example{number}",
        "video_id": f"video{number}",
        "start time": start,
        "end time": end,
        "split": split,
        "id": number,
    }


@pytest.fixture
def msrvtt(tmp_path) -> Path:
    root = tmp_path / "msrvtt"
    train_val = {
        "info": {"contributor": "Microsoft MSM group", "year": "2016", "version": "1.0"},
        "videos": [
            msrvtt_video(0, "train", 9, 137.72, 149.44),
            msrvtt_video(6513, "validate", 16, 0.0, 13.51),
        ],
        "sentences": [
            {
                "caption": "a cartoon animals runs through an ice cave",
                "video_id": "video0",
                "sen_id": 0,
            },
            {"caption": "a man talks about a car", "video_id": "video6513", "sen_id": 1},
            {"caption": "a cartoon character runs", "video_id": "video0", "sen_id": 2},
        ],
    }
    test = {
        "info": {"contributor": "Microsoft MSM group", "year": "2016", "version": "1.0"},
        "videos": [msrvtt_video(7010, "test", 2, 21.03, 34.85)],
        "sentences": [],
    }
    write(root / "train_val_videodatainfo.json", json.dumps(train_val, indent=2))
    write(root / "test_videodatainfo.json", json.dumps(test))
    return root


def test_msrvtt_round_trip(msrvtt):
    table = import_msrvtt(msrvtt, video_root="MSRVTT/videos/all")
    assert rows(table, c.URI, c.SPLIT, c.LABEL, c.CAPTIONS, c.START_S, c.END_S) == [
        {
            "video_id": "video0",
            "uri": "MSRVTT/videos/all/video0.mp4",
            "split": "train",
            "label": "9",
            "captions": ["a cartoon animals runs through an ice cave", "a cartoon character runs"],
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "video6513",
            "uri": "MSRVTT/videos/all/video6513.mp4",
            "split": "val",
            "label": "16",
            "captions": ["a man talks about a car"],
            "start_s": None,
            "end_s": None,
        },
        {
            "video_id": "video7010",
            "uri": "MSRVTT/videos/all/video7010.mp4",
            "split": "test",
            "label": "2",
            "captions": None,
            "start_s": None,
            "end_s": None,
        },
    ]


def test_msrvtt_errors(msrvtt):
    path = msrvtt / "test_videodatainfo.json"
    write(path, '{"videos": [\n  {"video_id": "video7010",}\n]}')
    fails(
        import_msrvtt,
        path,
        match="test_videodatainfo.json line 2: invalid JSON: Expecting property name enclosed "
        "in double quotes",
    )
    write(path, json.dumps({"videos": [msrvtt_video(7010, "dev", 2, 1.0, 2.0)]}))
    fails(
        import_msrvtt,
        path,
        match="test_videodatainfo.json videos[0]: split 'dev' must be one of train, validate, test",
    )
    document = {
        "videos": [msrvtt_video(7010, "test", 2, 1.0, 2.0)],
        "sentences": [{"caption": "x", "video_id": "video9", "sen_id": 0}],
    }
    write(path, json.dumps(document))
    fails(
        import_msrvtt,
        path,
        match="test_videodatainfo.json sentences[0]: video 'video9' is not in this file's videos",
    )
    write(
        path, json.dumps({"videos": [{**msrvtt_video(1, "test", 2, 1.0, 2.0), "video_id": ".."}]})
    )
    fails(
        import_msrvtt,
        path,
        match="test_videodatainfo.json videos[0]: unsafe video id: id '..' contains '..'",
    )


# ---------------------------------------------------------------- MSRVTT-QA and MSVD-QA


def test_msrvtt_qa_round_trip(tmp_path):
    root = tmp_path / "msrvtt-qa"
    write(
        root / "train_qa.json",
        json.dumps(
            [
                {
                    "answer": "animal",
                    "id": 0,
                    "question": "what is a cartoon doing?",
                    "video_id": 0,
                },
                {"answer": "two", "id": 1, "question": "how many men talk?", "video_id": 0},
            ]
        ),
    )
    write(
        root / "test_qa.json",
        json.dumps([{"answer": "man", "id": 2, "question": "who drives a car?", "video_id": 7010}]),
    )
    table = import_msrvtt_qa(root)
    assert rows(table, c.URI, c.SPLIT, c.QUESTIONS) == [
        {
            "video_id": "video0",
            "uri": "videos/video0.mp4",
            "split": "train",
            "questions": [
                {
                    "question": "what is a cartoon doing?",
                    "answer": "animal",
                    "question_type": "what",
                },
                {"question": "how many men talk?", "answer": "two", "question_type": "how"},
            ],
        },
        {
            "video_id": "video7010",
            "uri": "videos/video7010.mp4",
            "split": "test",
            "questions": [
                {"question": "who drives a car?", "answer": "man", "question_type": "who"}
            ],
        },
    ]
    write(
        root / "val_qa.json",
        json.dumps([{"answer": "a", "id": 3, "question": "where?", "video_id": 7010}]),
    )
    fails(
        import_msrvtt_qa,
        root,
        match="test_qa.json [0]: video 'video7010' is also in split val (val_qa.json [0])",
    )
    write(
        root / "val_qa.json", json.dumps([{"answer": "a", "question": "where?", "video_id": "7"}])
    )
    fails(
        import_msrvtt_qa,
        root,
        match="val_qa.json [0]: 'video_id' must be an integer >= 0, got '7'",
    )


def test_msvd_qa_uses_the_mapping(msvd):
    write(
        msvd / "val_qa.json",
        json.dumps(
            [{"answer": "tomato", "id": 0, "question": "what is sliced?", "video_id": 1201}]
        ),
    )
    table = import_msvd_qa(msvd, video_root="YouTubeClips")
    assert rows(table, c.URI, c.SPLIT, c.QUESTIONS, c.START_S, c.END_S) == [
        {
            "video_id": "-7KMZQEsJW4_205_208",
            "uri": "YouTubeClips/-7KMZQEsJW4_205_208.avi",
            "split": "val",
            "questions": [
                {"question": "what is sliced?", "answer": "tomato", "question_type": "what"}
            ],
            "start_s": None,
            "end_s": None,
        }
    ]
    write(
        msvd / "val_qa.json",
        json.dumps([{"answer": "x", "id": 0, "question": "what?", "video_id": 5}]),
    )
    fails(
        import_msvd_qa,
        msvd / "val_qa.json",
        match="val_qa.json [0]: video_id 5 (vid5) is not in youtube_mapping.txt",
    )


# ---------------------------------------------------------------- dispatch


def test_import_dataset_checks_options_per_format(kinetics, ucf):
    assert sorted(IMPORTERS) == sorted(
        ["ucf101", "hmdb51", "kinetics", "charades", "msvd", "msrvtt", "msvd-qa", "msrvtt-qa"]
    )
    assert import_dataset("ucf101", ucf, split_number=2).num_rows == 2
    fails(
        import_dataset,
        "kinetics",
        kinetics,
        split_number=1,
        match="split_number applies to ucf101 and hmdb51, not kinetics",
    )
    fails(
        import_dataset,
        "hmdb51",
        kinetics,
        val_groups=1,
        match="val_groups applies to ucf101, not hmdb51",
    )
    fails(
        import_dataset,
        "youtube8m",
        kinetics,
        match="unknown format 'youtube8m'; expected one of ucf101, hmdb51, kinetics, charades, "
        "msvd, msrvtt, msvd-qa, msrvtt-qa",
    )
    fails(import_dataset, "kinetics", kinetics, video_root=" ", match="video_root is empty")
