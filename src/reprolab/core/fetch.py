"""Datasets that can be fetched by URL: raw GitHub files pinned at a commit, each with its sha256.

Every entry names the public repository and commit it comes from (the provenance recorded in each shared data
folder's ``SOURCE.md``), the folder under the data home it fills, and the sha256 of every file it writes. A plain
entry downloads each file from ``<repo>@<commit>/<prefix><file>``; an ``archive`` entry downloads one zip or tar
archive (sha256 checked) and keeps the listed members (each checked again). No data is stored here: only URLs and
hashes. ``reprolab data list`` / ``reprolab data fetch NAME`` are the command line (``cli.py``).

Downloads go through :func:`reprolab.core.data.download`: a file is written to a temporary name and kept only when
its sha256 matches, so a failed or refused download leaves no half-written file; a file already present with the
right hash is reused, one with a wrong hash is never overwritten. ``$REPROLAB_FETCH_MIRROR`` replaces the URL
template (``{repo}``, ``{commit}``, ``{path}``), e.g. for a mirror, or a local server in the tests.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reprolab.core.data import data_home, download, sha256_file
from reprolab.core.errors import DataError

__all__ = ["FETCHABLE", "Fetchable", "fetch", "fetchable", "url_for"]

GITHUB_RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class Fetchable:
    """One fetchable dataset: ``files`` maps a path under ``folder`` (in the data home) to its sha256."""

    name: str
    folder: str
    repo: str
    commit: str
    description: str
    files: dict[str, str]
    prefix: str = ""  # a plain entry's file path in the repository = prefix + file
    archive: str = ""  # an archive entry's path in the repository
    archive_sha256: str = ""

    def source(self) -> str:
        return f"github.com/{self.repo} at {self.commit[:12]}"

    def present(self, home: str | Path | None = None) -> bool:
        root = data_home(home) / self.folder
        return all((root / name).is_file() for name in self.files)


def _set(
    name: str, folder: str, pinned: str, description: str, *, files: str, prefix: str = "", archive: str = ""
) -> Fetchable:
    repo, commit = pinned.split("@")
    table = dict(line.split() for line in files.strip().splitlines())
    path, _, digest = archive.partition(" ")
    return Fetchable(name, folder, repo, commit, description, table, prefix, path, digest)


# repositories that several entries come from, pinned once
_GRAIL = "kkteru/grail@2a3dffa719518e7e6250e355a2fb37cd932de91e"
_TU = "bknyaz/graph_nn@72eaa1c6bd70a90fde772ad4a21049ccd6bc97a2"
_CONVE = "TimDettmers/ConvE@f3c0eb286025410fa5b4c04696c918264163d0ca"


def _grail(split: str, files: str) -> Fetchable:
    """A GraIL inductive split: ``<split>/`` and ``<split>_ind/`` from the GraIL repository's ``data/``."""
    description = f"GraIL inductive split {split} and {split}_ind (compile_kg)"
    return _set(f"grail-{split}", "grail_inductive", _GRAIL, description, prefix="data/", files=files)


def _tu_archive(name: str, archive_sha256: str, files: str) -> Fetchable:
    """A TU dataset kept in ``TUDataset/<name>/`` from ``data/<name>.zip`` of bknyaz/graph_nn."""
    description = f"{name} in the TU text format (diffpool)"
    return _set(name, "TUDataset", _TU, description, archive=f"data/{name}.zip {archive_sha256}", files=files)


def _conve_archive(name: str, archive_sha256: str, files: str) -> Fetchable:
    """A small knowledge graph kept in ``kg_small/<name>/`` from ConvE's ``<name>.tar.gz``."""
    description = f"{name.capitalize()} train/valid/test triples"
    return _set(f"kg-{name}", "kg_small", _CONVE, description, archive=f"{name}.tar.gz {archive_sha256}", files=files)


_ENTRIES = (
    _set(
        "planetoid-cora",
        "planetoid",
        "kimiyoung/planetoid@af6abf468a772cc055bec88c52e4d6f51b7c37e3",
        "Cora citation graph, Planetoid ind.cora.* files (LDS)",
        prefix="data/",
        files="""
            ind.cora.allx 9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543
            ind.cora.ally 2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71
            ind.cora.graph 58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d
            ind.cora.test.index 297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875
            ind.cora.tx b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a
            ind.cora.ty 41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad
            ind.cora.x 23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab
            ind.cora.y 94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1
        """,
    ),
    _set(
        "planetoid-citeseer",
        "planetoid",
        "kimiyoung/planetoid@af6abf468a772cc055bec88c52e4d6f51b7c37e3",
        "Citeseer citation graph, Planetoid ind.citeseer.* files (LDS)",
        prefix="data/",
        files="""
            ind.citeseer.allx 2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668
            ind.citeseer.ally f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95
            ind.citeseer.graph d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7
            ind.citeseer.test.index 2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4
            ind.citeseer.tx 539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21
            ind.citeseer.ty 55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce
            ind.citeseer.x d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6
            ind.citeseer.y 8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924
        """,
    ),
    _set(
        "WN18RR",
        "WN18RR",
        _GRAIL,
        "WN18RR train/valid/test triples (domain_kge)",
        prefix="data/WN18RR/",
        files="""
            test.txt 0383bceaaa1096cf3c03ec021ed0048068e2355dbfc0239b292cefdac821cec5
            train.txt 038612e783c215ee5f3ca9fbfca27b8d0739be1028fe4ee7c174aecf0b83d5df
            valid.txt 453ce7202afa58094a04d2b1560ee2b02660f1c260b32ce6651c8ccedd1028ab
        """,
    ),
    _grail("WN18RR_v1", """
        WN18RR_v1/test.txt f1cb44e999e2540a0a614f4bb710c7f82a9304432ff37ce282749b56c66d0d20
        WN18RR_v1/train.txt 4cc72d4fdcc8206e208e1f59f3c778be5de4a68cfe76776d15245b0d2c08d396
        WN18RR_v1/valid.txt 5cebd29da8ada35ac73b6875329884cdf83943ddea454e9f70cc43b423ea479b
        WN18RR_v1_ind/test.txt 6df8c00a2e0cf1a4b484ac638c081198926fcbc411ce2e12ccc79d432eead269
        WN18RR_v1_ind/train.txt 7d1b73c5994e9aa816b34e33ee10707656803ba6b8a0f6066cae7ddc04f87553
        WN18RR_v1_ind/valid.txt cfa28b9d75dbab17ea82a9443a5bf8acb738e60267cc63f8a221b38967e1d238
    """),
    _grail("WN18RR_v2", """
        WN18RR_v2/test.txt 04e03f270adf4970132ad51ab1a4022e46e790e9b662890ce4e13d31e6d096ad
        WN18RR_v2/train.txt a14a902df92e32f4aeb65761560072a007ae915308bb8a7a03c58dc1e9c2a9ad
        WN18RR_v2/valid.txt 2d3f6703d87fe1605f636736f0e848d9750b8e1593bd41101554ecbb41a1d836
        WN18RR_v2_ind/test.txt 3b3942ce7665f1a6667721f5eab946bde79a5929f1996c5af16e0b092a5084bb
        WN18RR_v2_ind/train.txt 8dc9bb459e6306737a083b15698ed1420ce8dc57e27f8a42ab7b90c26dfc5154
        WN18RR_v2_ind/valid.txt fc32db7cb56dba0ff05bf57efd8a2279f0825dc6ae763c9d32281a9a1373c09a
    """),
    _grail("fb237_v1", """
        fb237_v1/test.txt 130534f98bc3b9621bc866035098b132091e8bc749fbad327b5978f3d47f49f7
        fb237_v1/train.txt 74ef3120fe38a22e5131064d23108b88a8d339496057fa8467d80dcda8f1cec1
        fb237_v1/valid.txt d4c2698d7dc36c0dc39ffb3d810caeafe530d779bf9f6451fac2027f41c2ff6d
        fb237_v1_ind/test.txt c79d39372be30a3864cfe5094b3022f38b57d88c351dbbfa2d9e7f3368ac23aa
        fb237_v1_ind/train.txt 049829f7047ecf0e0bff0769efca31bc7f811f760c4ffcb20a5680f789b00c61
        fb237_v1_ind/valid.txt ac817123c4177ef46b08a3802380a355282b99d4283c43474c9dd91c082107dd
    """),
    _grail("fb237_v2", """
        fb237_v2/test.txt 95da050e60b94f285cdf18ea7899b34df9e0a4a1d638f5ec6ff99caef36a2beb
        fb237_v2/train.txt 542f81af46d6727979278643105ba7c236dd8b29ee5d9962e3c3fa295ab8869c
        fb237_v2/valid.txt 59e07dcb883b28bb35585ba95576e4ebb2a71ddbc906119abcc4c87b28198d0c
        fb237_v2_ind/test.txt 17c16e008cb6dfdc67ef0f375aab0a8fee2b087c7d687a72f5217b789d0c4a10
        fb237_v2_ind/train.txt 6756f8d4aa688bc1a18c1106117a7fde94e0469f223f5d00954846afce471e54
        fb237_v2_ind/valid.txt 2c3b4430cac899b868c9dd22ece0eae830ca62c8a6c0bf8610c670bbeaf7d6d8
    """),
    _grail("nell_v1", """
        nell_v1/test.txt 45ec92b2c2b6cfdd1fe29001dcb1fa5b8fc3c5c4cf0778e67ddad9f6fcce5f53
        nell_v1/train.txt d2b5d535ace4d1e3a18e69176e84a3ada1ca62fb4a647a12c4222781b91615ba
        nell_v1/valid.txt d11d6de249ff1185e701536a7d63f0c997cf7cce2646f3d17c06ecc885835726
        nell_v1_ind/test.txt 66a497671114e73f450cf9e5eb79be5e5790121816228eb43e3ba3481e2bfa28
        nell_v1_ind/train.txt b0bfb66f65d70586a26703eb022926a75c1f234d1bcdeafe2e8d387be41291ee
        nell_v1_ind/valid.txt 297c1c82c944bd76255f6ad4cc22f5ecbb23c9daac366e8991b5770ca0dfb8fc
    """),
    _grail("nell_v2", """
        nell_v2/test.txt 0fb5ac8305b8aab8b0df9b3b0bbd6962520011beae66b9f51470ab5d7d7b473c
        nell_v2/train.txt 850a117e29126fd2e8d9d4ddb3430ee540c7ed2999142fb0fd9d7195204ce0a1
        nell_v2/valid.txt deb8b4c65548da49f3d8a1a171dbfa106de8b38d6747d38486ced4d324d3a600
        nell_v2_ind/test.txt b479de23638f3d86d96094b0e3a18144433841f84e1cec7af192b44839c8e1cf
        nell_v2_ind/train.txt d92470e3e07f354e665ee9cc5c4e0fb99ff8e6414839f340607be32e7709aef4
        nell_v2_ind/valid.txt efcd59a03cb9a345f35ce7139c4817bc632143325394b474278b75568fe0808f
    """),
    _set(
        "DD",
        "TUDataset_gin_format",
        "yeweiysh/IHGNN@b17214636dd0a0f83b05849cc6dc9ec2ebd4efbf",
        "D&D in the GIN/DGCNN format with 10 folds, kept as DD.zip (diffpool)",
        prefix="data/",
        files="""
            DD.zip 0ce3eca1f096ce77ff6fb2287b2b45d0d6991ca1f15734fc873a1003ac79c34d
        """,
    ),
    _set(
        "binvox-samples",
        "binvox_samples",
        "dimatura/binvox-rw-py@45c39d5d3336d73c8c953da195fbe5d93858cd57",
        "two 32^3 .binvox voxel models (imnet reader smoke test)",
        prefix="",
        files="""
            8a85.binvox c22de2289cb9243b6f1fa9a97afec310321dfdca2f9cdff78bd8cc6d3614ae85
            chair.binvox ca38aff0fd7f952f0bf3c0b1918b2385591eeef80c473828d67ca73a98c9eef7
        """,
    ),
    _set(
        "coco8",
        "coco8",
        "LilianHollard/LeYOLO@a2d551baa673dd9dc2dfb19597fe44e9abb64f3e",
        "8 COCO images with YOLO labels (orderfree data=yolo smoke test)",
        prefix="datasets/coco8/",
        files="""
            LICENSE c3bc1fd94148c28485e8bab1d5a28edbc8e3870f2bd9be7127c68c8b7a0ea5df
            README.md e1ce0c77829f3765ed6bd21733dcada572d772413dd44c41d36d0a90ecb0ec60
            images/train/000000000009.jpg be0ecc9cacc0150f0a84f6dc098f3e5c526ac85f8a14c1a0d16c2a4eb3d305a6
            images/train/000000000025.jpg f7ddff65077bd4e362a890ed13b1cd931fd38882d49bae9e7e53e369e4b4d028
            images/train/000000000030.jpg 52a12b6af76049a23192320610a316b6c1ea8e7d12e083f15c18e1690c506e66
            images/train/000000000034.jpg 8d5334f6c8d3e8b77d50726625eecc6896597f063d3801f1993ffcb9e6b05acb
            images/val/000000000036.jpg 4c28394898302bef227834d63498a0fc54e4295f11c590c8a8ebcba51347bc03
            images/val/000000000042.jpg c87afb6dfe55db1cada52479ed939a231e030d64f5e3c3eaf7eb1544591f853a
            images/val/000000000049.jpg 86b46022d382f67b0934147fe515e1c3c3f5c04db45045516214b5e3092148e3
            images/val/000000000061.jpg 6460e4a7cc80e34815aba8910a23152a16a24a416fa598138bd9231cccd413e2
            labels/train/000000000009.txt 91e0c22ffeffd27ae1c176c38fc534ff4de980c20fafb32922f01dcd407b920e
            labels/train/000000000025.txt 73e4d0a58416a5814ad3e9d58b6927b3a4898c5a4fa18341d333261ddb215b86
            labels/train/000000000030.txt 1defb5823f183ade62575a6b4398f2609a4d9cabd428147c887b95e610a831d9
            labels/train/000000000034.txt 252857cf07883c38308b12ec978323222813ffd0fb9a98bbfe350b44ee1a62e7
            labels/val/000000000036.txt 638773d69e1348c8d213cc0fdaf4107d170df7811af56f2cce372ca245556149
            labels/val/000000000042.txt c0e1ac95cf47310a3de9692cf0505fbf1ddcabceed575a3ecfac3c87f184f168
            labels/val/000000000049.txt 0c0973cfb10a591266b92769e7cd43686133ea12faaa9d583702bf1c55e126e3
            labels/val/000000000061.txt d7988d745a68480c7331b323adeec29adb1b0a4df53b072ed45d9650893eb812
        """,
    ),
    _tu_archive("ENZYMES", "0ca7125d7978788346fc6ba5c3cc643b6122153b304220c2230bcb09f99f8ffb", """
        ENZYMES/ENZYMES_A.txt 5553c84f8f562f3e199dfd27192174f485e85c44c1357661098668937a739cbf
        ENZYMES/ENZYMES_graph_indicator.txt 95ba0fa47eba6f02e6b754a215dc66d5b49de3f45f57a128514301a8d7ed5f46
        ENZYMES/ENZYMES_graph_labels.txt 04743e08967e61e65cdacbb90f8df6ee53742b3d2e7b84675b85ebac70506856
        ENZYMES/ENZYMES_node_attributes.txt 305a8fc3b12f79fb844ef3374d6a3c8ceeb4887dd4f86bbfe37932c4c5434e7b
        ENZYMES/ENZYMES_node_labels.txt 8263eb9b64efa231a5886343483ccfc0342f2407014763a8f738fd51c32ce770
        ENZYMES/README.txt 32d5fef501200221a2c0e1af3366797fa443ab8f490231c5fb4a8719e1df48cf
    """),
    _tu_archive("PROTEINS", "fe9d19741637486ea1fd285bf669fce0b117e10b03cdd379f6a5e6197fc830ae", """
        PROTEINS/PROTEINS_A.txt 4c4b33e272fc95cac6d27ed6d5d12b9a852c8610e91fff59f8f0dbdd5a20df67
        PROTEINS/PROTEINS_graph_indicator.txt 8d4ff1e852a5c28561e9bffb44cf9490bc552b13a3b6156dd12dc7f44e9afc4a
        PROTEINS/PROTEINS_graph_labels.txt c0ef9810c440775252872318d0c8adc385588e14bc4c47a2c34aa96ee3c7cdcd
        PROTEINS/PROTEINS_node_attributes.txt 54eef829abb37e458a5fbf3a3c581e48e5810e220463c2cd951856b9ceb08f07
        PROTEINS/PROTEINS_node_labels.txt f758e8ad3d6e3c026b50833d75f6f90735b94eb3345e4243707f495ca8afea8d
        PROTEINS/README.txt e9c4ed2c9a4059ddfdc2eb7330ebecfc6c8d42dabd5ce2ee67f28aed0db49da7
    """),
    _tu_archive("MUTAG", "20f52db82d6d85d5f67d2fa42c3fb705d05934be44329314ab17b05d0c012f7e", """
        MUTAG/MUTAG_A.txt d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2
        MUTAG/MUTAG_edge_labels.txt 4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56
        MUTAG/MUTAG_graph_indicator.txt 7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056
        MUTAG/MUTAG_graph_labels.txt a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c
        MUTAG/MUTAG_node_labels.txt 678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863
        MUTAG/README.txt 66de65e4826e112482ec680bbbdf7c0af56d826ce935c110786d130b79b76b06
    """),
    _set(
        "WN18",
        "WN18",
        "huxilin/SPKGE-data@672e6dd5e1af8f7a237ed66d6da6a789138305db",
        "WN18 train/valid/test triples (domain_kge)",
        archive="data/WN18.zip bce2e515d9565694f44b387e18dd69c3c501068b30190763e6f9d72782e81778",
        files="""
            test.txt d22c19d176d4ba6a6f0d0c6bfce39ab3c16e3b20e1df6f9efe0d9ed86542fa10
            train.txt 24c9b02dc57d3ae8ca8467ce355995edee7be8eddc3bd070ee34d3c6fc3c95eb
            valid.txt 13347bfb5e17d1cae003e0bfe29b4716d3ab748e8cfb6af997138d37da3a51dc
        """,
    ),
    _conve_archive("nations", "feb3e3e027103089934ea7dfb67d2048d8a43e65d6757a86f2e037acb66f640b", """
        nations/test.txt 3971085165b47b6aeaec68058c6d8d98b3005e929db81268410b95ae4db770ab
        nations/train.txt 0830fa9da8e5bba2ccdaa45b7bdc9130451ba66b09ff2708f35fccaf82473e57
        nations/valid.txt 2b337a62e51a2f45c283eac98a70d21b7e0e102136be1539b2a52c652a7b0530
    """),
    _conve_archive("kinship", "a3cb9ca67213eb38133aebc12901195e283d844ebd59f1a6cbf2d4fa12ced4e6", """
        kinship/test.txt 05e5733265761d55be9c05bfaff5a8d0808df46f9c1e9d66cc3f2fe114e43d88
        kinship/train.txt 738612111a6acf0e39662bde24c7e72a4d1edf20931beea077da367dda689731
        kinship/valid.txt c56f8630a583178b1e569f11a64aa535ae1ce0b0912d8b1e24716be2b37f04da
    """),
    _conve_archive("umls", "26223aa91f0ec8db2324e0f489b9a4425e04d1d0df72ce5cfd62af4b91aee6fd", """
        umls/test.txt a7eb529a3d2810fcc96341ccc97c625a5e202f8389673aa6bd317eeebbb79014
        umls/train.txt 873ef4925516b83e7f6f8cc02b4be51d848828710a7f65a956f0ac4a9e452f35
        umls/valid.txt 025c98f8a4891e2a6582ec5b40ee0d904031edad9c52554522f4b7904820c98e
    """),
    _set(
        "kg-countries",
        "kg_small",
        _CONVE,
        "Countries S1-S3 train/valid/test triples",
        prefix="countries/",
        files="""
            countries_S1/test.txt 262ca5ae5ed3aa1927026e0f258cc52b10830185b93465b93b9360727e719158
            countries_S1/train.txt 5256bf3fc4181d7e87d819571e3acfa5425fc5af365b9ebe5c113740534ca561
            countries_S1/valid.txt f4b27648148a44f87e627140ec3a02ca4c884c32d348591147ca72f1d6fff5b0
            countries_S2/test.txt 262ca5ae5ed3aa1927026e0f258cc52b10830185b93465b93b9360727e719158
            countries_S2/train.txt 84c8f310fa076f902760f0909716b13bc0853a105ab9e0145e4e5135d855f68a
            countries_S2/valid.txt f4b27648148a44f87e627140ec3a02ca4c884c32d348591147ca72f1d6fff5b0
            countries_S3/test.txt 262ca5ae5ed3aa1927026e0f258cc52b10830185b93465b93b9360727e719158
            countries_S3/train.txt 80a8e3a26aff58b78fd5a453ec2a37591466bad621df8d05185f26763b663a0c
            countries_S3/valid.txt f4b27648148a44f87e627140ec3a02ca4c884c32d348591147ca72f1d6fff5b0
        """,
    ),
)

FETCHABLE: dict[str, Fetchable] = {entry.name: entry for entry in _ENTRIES}


def fetchable(name: str) -> Fetchable | None:
    """The entry named ``name`` (a dataset's registry name, e.g. ``planetoid-cora``), or ``None``."""
    return FETCHABLE.get(name)


def url_for(entry: Fetchable, path: str) -> str:
    template = os.environ.get("REPROLAB_FETCH_MIRROR") or GITHUB_RAW
    return template.format(repo=entry.repo, commit=entry.commit, path=path)


def fetch(name: str, dest: str | Path | None = None, *, timeout: float = 60.0) -> list[Path]:
    """Download dataset ``name`` into ``dest`` (default: the data home) and return the files of its layout.

    Every file is checked against its sha256 before it is kept; files already present with the right hash are
    reused. Raises :class:`DataError` (one line) on an unknown name, a network error or a hash mismatch."""
    entry = FETCHABLE.get(name)
    if entry is None:
        raise DataError(f"unknown fetchable dataset {name!r}; fetchable: {', '.join(sorted(FETCHABLE))}")
    root = data_home(dest) / entry.folder
    try:
        if entry.archive:
            _fetch_archive(entry, root, timeout)
        else:
            for relative, digest in entry.files.items():
                download(url_for(entry, entry.prefix + relative), root / relative, sha256=digest, timeout=timeout)
    except DataError:  # a refused hash: its message names the file
        raise
    except (urllib.error.URLError, OSError, ValueError) as err:  # network, disk, or a malformed mirror URL
        reason = getattr(err, "reason", None) or err
        raise DataError(f"{name}: download failed ({reason}); nothing half-written was kept") from None
    return [root / relative for relative in entry.files]


def _fetch_archive(entry: Fetchable, root: Path, timeout: float) -> None:
    """Download the archive once (sha256 checked) and keep the listed members, each checked again."""
    if all((root / name).is_file() and sha256_file(root / name) == digest for name, digest in entry.files.items()):
        return
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=root))
    try:
        archive = download(
            url_for(entry, entry.archive),
            scratch / PurePosixPath(entry.archive).name,
            sha256=entry.archive_sha256,
            timeout=timeout,
        )
        members = _members(archive)
        for relative, digest in entry.files.items():
            target = root / relative
            if target.is_file():
                if sha256_file(target) != digest:
                    raise DataError(f"{target}: exists with a different sha256 than expected; remove it to re-fetch")
                continue
            basename = PurePosixPath(relative).name
            found = members.get(basename)
            if found is None:
                raise DataError(f"{entry.archive}: no member {basename} in the archive")
            part = scratch / f"{basename}.part"
            _extract_member(archive, found, part)
            if sha256_file(part) != digest:
                raise DataError(f"{entry.archive}: member {found} has sha256 {sha256_file(part)}, expected {digest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _members(archive: Path) -> dict[str, str]:
    """Regular members by base name (macOS resource forks ``__MACOSX/``, ``._*`` left out)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            names = [info.filename for info in handle.infolist() if not info.is_dir()]
    else:
        with tarfile.open(archive) as handle:
            names = [member.name for member in handle.getmembers() if member.isfile()]
    kept = [n for n in names if "__MACOSX" not in n and not PurePosixPath(n).name.startswith("._")]
    return {PurePosixPath(n).name: n for n in kept}


def _extract_member(archive: Path, member: str, target: Path) -> None:
    """Copy one member's bytes to ``target`` (read as a stream: no path from the archive is ever created)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle, handle.open(member) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
        return
    with tarfile.open(archive) as handle:
        source = handle.extractfile(member)
        if source is None:
            raise DataError(f"{archive}: member {member} is not a regular file")
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
